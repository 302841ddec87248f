"""What every exporter of the package shares.

- :class:`Exporter`: collection at scrape time, bounded by the scrape timeout Prometheus sends
  (``X-Prometheus-Scrape-Timeout-Seconds``) and a ceiling; concurrent scrapes share one
  collection (single flight); a failed or slow backend gives ``*_up 0`` and a counted error of
  a bounded kind, never an exception; one log line when the state changes, not one per scrape.
- :func:`serve`: the HTTP server for ``/metrics`` (text format or OpenMetrics, gzip), ``/`` and
  ``/healthz``, stopped cleanly by SIGTERM / SIGINT; :func:`start_http`, the package's one way
  to serve HTTP (the exporters, the inference proxy, the simulator).
- :class:`Failures`: the failure tracking of every part that can fail (the backend, a
  background task, a source read on its own): last success, errors by kind, one log line a change.
- :func:`listen_address`, :func:`read_secret`, :func:`safe_url`: the flags and credentials
  conventions (secrets from environment or file, never in logs).
- :class:`LinesFamily`: the fast path for exporters with tens of thousands of series.

An exporter implements :meth:`Exporter.collect_families`; the health metrics are added here::

    medobs_queue_up 1.0
    medobs_queue_scrape_duration_seconds 0.012
    medobs_queue_scrape_errors_total{kind="timeout"} 2.0
    medobs_queue_last_success_timestamp_seconds 1.7953e+09
"""

from __future__ import annotations

import argparse
import gzip
import logging
import math
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from medobs import UserError
from medobs.core.catalog import Metric as CatalogMetric

log = logging.getLogger("medobs.exporter")

#: Seconds kept free between our answer and Prometheus's scrape timeout.
TIMEOUT_MARGIN = 0.5
TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


class CollectionError(Exception):
    """A backend failure. ``kind`` becomes the ``kind`` label of ``*_scrape_errors_total``, so it
    must come from a small fixed set (connection, timeout, http_401, malformed ...).

    ``families``: what the collection still knows despite the failure (for example a model's
    availability when only TF Serving's metrics endpoint failed); exposed beside ``*_up 0``.
    """

    def __init__(self, kind: str, message: str, families: Sequence[Metric] = ()):
        super().__init__(message)
        self.kind = kind
        self.families = list(families)


class Deadline:
    """The time a collection must finish by; backends size their own timeouts from it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self, floor: float = 0.05) -> float:
        return max(floor, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at


class Failures:
    """How the parts of a collection fare (the backend, a background task, a source read on its
    own cadence), each under a key: when it last succeeded, its failures counted by kind, and one
    log line when its state changes (failing, failing otherwise, working again), not one per try.

    ``name(key)`` is how log lines name a part; ``recovered`` is what they say when it works again.
    """

    def __init__(self, logger: logging.Logger, name: Callable[[str], str], recovered: str = "working again"):
        self.logger, self.name, self.recovered = logger, name, recovered
        self._lock = threading.Lock()
        self._succeeded: dict[str, tuple[float, float]] = {}  # key -> (Unix time, monotonic time)
        self._errors: dict[tuple[str, str], int] = {}
        self._failing: dict[str, str] = {}

    def success(self, key: str = "") -> None:
        with self._lock:
            self._succeeded[key] = (time.time(), time.monotonic())
            recovered = self._failing.pop(key, None) is not None
        if recovered:
            self.logger.info("%s: %s", self.name(key), self.recovered)

    def failure(self, error: CollectionError, key: str = "") -> None:
        with self._lock:
            self._errors[(key, error.kind)] = self._errors.get((key, error.kind), 0) + 1
            changed = self._failing.get(key) != error.kind
            self._failing[key] = error.kind
        if changed:
            self.logger.warning("%s: %s error: %s", self.name(key), error.kind, error)

    def forget(self, key: str = "") -> None:
        """The part stopped: its values are gone, so is the time they were read."""
        with self._lock:
            self._succeeded.pop(key, None)

    def up(self, key: str = "") -> bool:
        """Whether its last try succeeded."""
        with self._lock:
            return key in self._succeeded and key not in self._failing

    def last_success(self, key: str = "") -> float | None:
        """Unix time of its last success (None before the first)."""
        with self._lock:
            return self._succeeded[key][0] if key in self._succeeded else None

    def ages(self) -> dict[str, float]:
        """Seconds since each part last succeeded, by key."""
        now = time.monotonic()
        with self._lock:
            return {key: now - at for key, (_, at) in sorted(self._succeeded.items())}

    def errors(self) -> dict[tuple[str, str], int]:
        """Failures by ``(key, kind)``, sorted."""
        with self._lock:
            return dict(sorted(self._errors.items()))


def gauge(entry: CatalogMetric, value: float | None = None) -> GaugeMetricFamily:
    """A fresh gauge family named and documented from the catalog entry (``value`` if unlabelled)."""
    return GaugeMetricFamily(entry.name, entry.help, value=value, labels=list(entry.labels) if entry.labels else None)


def counter(entry: CatalogMetric, value: float | None = None) -> CounterMetricFamily:
    """A fresh counter family named and documented from the catalog entry (``value`` if unlabelled)."""
    return CounterMetricFamily(
        entry.name, entry.help, value=value, labels=list(entry.labels) if entry.labels else None
    )


def label_block(names: Sequence[str], values: Sequence[str]) -> str:
    """``{name="value",...}`` with the values escaped as both exposition formats want."""
    return "{" + ",".join(f'{name}="{_escape_label_value(value)}"' for name, value in zip(names, values)) + "}"


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value as the exposition formats write it."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class LinesFamily(Metric):
    """A gauge or counter family whose sample lines are rendered without prometheus_client's encoders.

    Those spend about 5 µs a sample on validation and escaping, which an exporter of tens of
    thousands of series cannot afford: it renders each series' label block once per collection
    (:func:`label_block`), shares it between its families, and adds rows here. The HTTP handler
    writes the headers with prometheus_client and the rows as they are, in either format;
    ``samples`` is built on demand for everything else (tests, registries).
    """

    def __init__(self, entry: CatalogMetric):
        self.name = entry.name.removesuffix("_total") if entry.type == "counter" else entry.name
        self.documentation, self.type, self.unit = entry.help, entry.type, ""
        self.labelnames = entry.labels
        self.sample_name = entry.name
        self.rows: list[tuple[Sequence[str], str, float]] = []

    def add(self, values: Sequence[str], block: str, value: float) -> None:
        """One series: its label values, their :func:`label_block`, its value."""
        self.rows.append((values, block, value))

    @property
    def samples(self) -> list[Sample]:  # type: ignore[override]
        return [Sample(self.sample_name, dict(zip(self.labelnames, values)), value) for values, _, value in self.rows]

    def render(self, encoder: Any) -> bytes:
        header = encoder(_Snapshot([Metric(self.name, self.documentation, self.type)])).removesuffix(b"# EOF\n")
        name, rows = self.sample_name, self.rows
        if all(math.isfinite(value) for _, _, value in rows):  # repr() writes finite numbers as both formats want
            lines = [f"{name}{block} {value!r}\n" for _, block, value in rows]
        else:
            lines = [f"{name}{block} {number(value)}\n" for _, block, value in rows]
        return header + "".join(lines).encode()


def encode(families: Sequence[Metric], encoder: Any) -> bytes:
    """The exposition of ``families`` (:class:`LinesFamily` rows as they are, the rest by ``encoder``)."""
    rendered = [family.render(encoder) for family in families if isinstance(family, LinesFamily)]
    rest = _Snapshot([family for family in families if not isinstance(family, LinesFamily)])
    return b"".join(rendered) + encoder(rest)


class _Flight:
    """One collection that several scrapes may wait on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.families: list[Metric] = []
        self.error: CollectionError | None = None
        self.timed_out = False


class Exporter(ABC):
    """Base of the package's exporters: see the module docstring.

    ``health`` is the catalog's ``(up, scrape_duration, scrape_errors, last_success)`` tuple.
    ``ceiling`` bounds a collection when Prometheus sends no timeout (and caps the one it sends).
    """

    def __init__(self, health: Sequence[CatalogMetric], ceiling: float = 10.0):
        self.up_metric, self.duration_metric, self.errors_metric, self.last_success_metric = health
        self.ceiling = ceiling
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self.failures = Failures(log, lambda _: self.describe_backend(), recovered="collecting again")
        self._last_duration = 0.0

    @abstractmethod
    def collect_families(self, deadline: Deadline) -> Iterable[Metric]:
        """Read the backend and return fresh metric families; raise CollectionError on failure."""

    def describe_backend(self) -> str:
        """How log lines name the backend (never with credentials)."""
        return type(self).__name__

    # -- one collection shared by concurrent scrapes ---------------------------------------

    def scrape(self, timeout: float | None = None) -> list[Metric]:
        """Families for one scrape: the backend's (if it answered in time) plus health."""
        budget = min(timeout, self.ceiling) if timeout else self.ceiling
        with self._lock:
            flight = self._flight
            if flight is None:
                flight = self._flight = _Flight()
                worker = threading.Thread(target=self._collect, args=(flight, budget), daemon=True)
                worker.start()
        if not flight.done.wait(budget):
            with self._lock:
                first, flight.timed_out = not flight.timed_out, True
            if first:
                self._record_failure(CollectionError("timeout", f"no answer within {budget:.1f}s"), budget)
            return self._health_families()
        if flight.error is None:
            return list(flight.families) + self._health_families()
        return flight.error.families + self._health_families()

    def _collect(self, flight: _Flight, budget: float) -> None:
        started = time.monotonic()
        try:
            flight.families = list(self.collect_families(Deadline(budget)))
        except CollectionError as error:
            flight.error = error
        except Exception as error:  # a bug or an unexpected backend answer: report, never die
            log.exception("%s: unexpected error while collecting", self.describe_backend())
            flight.error = CollectionError("internal", f"{type(error).__name__}: {error}")
        duration = time.monotonic() - started
        with self._lock:
            self._flight = None
            late = flight.timed_out
        # A collection that finished after its scrapes gave up was counted as a timeout already.
        if not late and flight.error is None:
            self._record_success(duration)
        elif not late:
            self._record_failure(flight.error, duration)
        flight.done.set()

    def _record_success(self, duration: float) -> None:
        self._last_duration = duration
        self.failures.success()

    def _record_failure(self, error: CollectionError, duration: float) -> None:
        self._last_duration = duration
        self.failures.failure(error)

    def _health_families(self) -> list[Metric]:
        up = gauge(self.up_metric, value=1.0 if self.failures.up() else 0.0)
        duration = gauge(self.duration_metric, value=self._last_duration)
        errors = counter(self.errors_metric)
        for (_, kind), count in self.failures.errors().items():
            errors.add_metric([kind], count)
        families = [up, duration, errors]
        last_success = self.failures.last_success()
        if last_success is not None:
            families.append(gauge(self.last_success_metric, value=last_success))
        return families


# -- HTTP ---------------------------------------------------------------------------------------


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def scrape_timeout(header: str | None) -> float | None:
    """The collection budget from Prometheus's timeout header (None when absent or invalid)."""
    try:
        seconds = float(header) if header else 0.0
    except ValueError:
        return None
    return max(0.1, seconds - TIMEOUT_MARGIN) if seconds > 0 else None


def make_handler(exporter: Exporter, extra: Sequence[Collector] = ()) -> type[BaseHTTPRequestHandler]:
    """A request handler serving ``exporter`` (plus ``extra`` collectors) on /metrics."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "medobs-exporter"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = urlsplit(self.path).path
            if path == "/metrics":
                families = exporter.scrape(scrape_timeout(self.headers.get(TIMEOUT_HEADER)))
                for collector in extra:
                    families.extend(collector.collect())
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                body = encode(families, encoder)
                headers = {"Content-Type": content_type}
                if "gzip" in self.headers.get("Accept-Encoding", ""):
                    body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
                self._answer(200, body, headers)
            elif path == "/healthz":
                self._answer(200, b"ok\n", {"Content-Type": "text/plain"})
            elif path == "/":
                page = f"<html><body><h1>{exporter.describe_backend()}</h1><a href='/metrics'>metrics</a></body></html>"
                self._answer(200, page.encode(), {"Content-Type": "text/html"})
            else:
                self._answer(404, b"not found\n", {"Content-Type": "text/plain"})

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class Server(ThreadingHTTPServer):
    """A thread per connection, none of which holds up the exit, and a listen backlog of 1024:
    the default of 5 refuses connections when a burst of clients (concurrent scrapes, a load
    test through the proxy) arrives at once."""

    request_queue_size = 1024
    daemon_threads = True


def start_http(handler: type[BaseHTTPRequestHandler], listen: tuple[str, int], name: str, hint: str = "") -> Server:
    """Serve ``handler`` on ``listen`` in a background thread named ``name``; the caller owns
    ``shutdown()``. An address that cannot be bound is a UserError naming ``name`` (and ``hint``)."""
    try:
        server = Server(listen, handler)
    except OSError as error:
        advice = f"; {hint}" if hint else ""
        raise UserError(f"{name}: cannot listen on {listen[0]}:{listen[1]}: {error.strerror}{advice}") from None
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True).start()
    return server


def start_server(exporter: Exporter, listen: tuple[str, int], extra: Sequence[Collector] = ()) -> Server:
    """Serve ``exporter``'s /metrics in a background thread; the caller owns ``shutdown()``."""
    return start_http(make_handler(exporter, extra), listen, "metrics")


def serve(
    exporter: Exporter,
    listen: tuple[str, int],
    extra: Sequence[Collector] = (),
    then: Callable[[], object] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status. ``then`` runs once /metrics
    listens (where a sidecar starts its other parts); what it raises stops the server."""
    server = start_server(exporter, listen, extra)
    try:
        if then is not None:
            then()
        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        log.info("serving %s on http://%s:%d/metrics", exporter.describe_backend(), *server.server_address[:2])
        stopped.wait()
    finally:
        server.shutdown()
    return 0


# -- flags and credentials ----------------------------------------------------------------------


def listen_address(value: str) -> tuple[str, int]:
    """argparse type for ``--listen HOST:PORT`` (``:PORT`` listens on every interface)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (for example 127.0.0.1:9419)")
    return host.strip("[]") or "0.0.0.0", int(port)


def seconds(value: str) -> float:
    """argparse type for a duration in seconds, 0 or more (0 usually turns a feature off)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not number >= 0 or number == math.inf:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds (0 or more)")
    return number


def positive_seconds(value: str) -> float:
    """argparse type for a duration in seconds above 0."""
    number = seconds(value)
    if number == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds above 0")
    return number


def add_server_arguments(parser: argparse.ArgumentParser, default_port: int, ceiling: float = 10.0) -> None:
    parser.add_argument(
        "--listen", type=listen_address, default=("0.0.0.0", default_port), metavar="HOST:PORT",
        help=f"where to serve /metrics (default: :{default_port})",
    )
    parser.add_argument(
        "--scrape-timeout-ceiling", type=positive_seconds, default=ceiling, metavar="SECONDS",
        help="longest a collection may take, whatever timeout Prometheus sends (default: %(default)s)",
    )


def read_secret(name: str, file_flag: Path | None = None) -> str | None:
    """A secret from ``--...-file``, ``$NAME_FILE`` or ``$NAME``, in that order (None if unset)."""
    path = file_flag or (Path(os.environ[f"{name}_FILE"]) if os.environ.get(f"{name}_FILE") else None)
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as error:
            raise UserError(f"cannot read the secret file {path}: {error.strerror}") from None
    return os.environ.get(name)


def safe_url(url: str) -> str:
    """``url`` without user and password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
