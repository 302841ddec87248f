"""What every exporter of the package shares.

- :class:`Exporter`: collection at scrape time, bounded by the scrape timeout Prometheus sends
  (``X-Prometheus-Scrape-Timeout-Seconds``) and a ceiling; concurrent scrapes share one
  collection (single flight); a failed or slow backend gives ``*_up 0`` and a counted error of
  a bounded kind, never an exception; one log line when the state changes, not one per scrape;
  a collection stuck past its deadline is not joined by later scrapes.
- :func:`serve`: the HTTP(S) server for the telemetry path (text format or OpenMetrics, gzip at
  level 1, GET and HEAD), a landing page on ``/`` and ``/healthz``, on every
  ``--web.listen-address``, with ``--web.config.file``'s TLS and basic auth (:mod:`medobs.core.web`),
  stopped cleanly by SIGTERM / SIGINT; beside the exporter's families, :class:`SelfMetrics`
  (``*_build_info``, ``process_*``, ``python_gc_*``). :func:`add_server_arguments` adds the
  flags, ``--log.*`` too (:mod:`medobs.core.logs`, applied by ``medobs`` before the command runs).
- :class:`Failures`: the failure tracking of every part that can fail (the backend, a
  background task, a source read on its own): last success, errors by kind, one log line a change.
- :func:`listen_address`, :func:`read_secret`, :func:`safe_url`: the flags and credentials
  conventions (secrets from environment or file, never in logs).
- :class:`LinesFamily`: the fast path for exporters with tens of thousands of series, and for
  the families every scrape carries (health, self-metrics), so that a scrape costs little more
  than its collection.

An exporter implements :meth:`Exporter.collect_families`; the health metrics are added here::

    medobs_queue_up 1.0
    medobs_queue_scrape_duration_seconds 0.012
    medobs_queue_scrape_errors_total{kind="timeout"} 2.0
    medobs_queue_last_success_timestamp_seconds 1.7953e+09
"""

from __future__ import annotations

import argparse
import gzip
import html
import logging
import math
import operator
import os
import platform
import re
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from medobs import __version__
from medobs.core import logs  # the --log.* flags; `medobs` applies them before the command runs
from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.catalog import build_info
from medobs.core.files import read_text
# Server and start_http are also imported from here by the inference proxy and the simulator.
from medobs.core.web import IDLE_TIMEOUT, BasicAuth, Server, WebConfig, load_web_config, start_http

log = logging.getLogger("medobs.exporter")

#: Seconds kept free between our answer and Prometheus's scrape timeout.
TIMEOUT_MARGIN = 0.5
TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
#: Collections left running past their deadline (a hung driver) before new scrapes join the
#: last one again instead of starting more: bounds the threads a backend that never answers takes.
MAX_ABANDONED = 2
#: How long a collection thread waits for the next scrape before it ends.
IDLE_WORKER_SECONDS = 120.0


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


_VALUE = operator.itemgetter(2)
#: Each :class:`LinesFamily`'s ``# HELP`` / ``# TYPE`` lines by encoder, name, help and type.
_HEADERS: dict[tuple[Any, str, str, str], bytes] = {}


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
        key = (encoder, self.name, self.documentation, self.type)
        header = _HEADERS.get(key)
        if header is None:  # the same each scrape: rendered by prometheus_client once
            header = encoder(_Snapshot([Metric(self.name, self.documentation, self.type)])).removesuffix(b"# EOF\n")
            _HEADERS[key] = header
        name, rows = self.sample_name, self.rows
        if math.isfinite(sum(map(_VALUE, rows))):  # all finite: repr() writes them as both formats want
            lines = [f"{name}{block} {value!r}\n" for _, block, value in rows]
        else:
            lines = [f"{name}{block} {number(value)}\n" for _, block, value in rows]
        return header + "".join(lines).encode()


def encode(families: Sequence[Metric], encoder: Any) -> bytearray:
    """The exposition of ``families`` (:class:`LinesFamily` rows as they are, the rest by ``encoder``)."""
    body = bytearray()  # one family at a time: the body is held once, not its parts, a join and a sum
    for family in families:
        if isinstance(family, LinesFamily):
            body += family.render(encoder)
    body += encoder(_Snapshot([family for family in families if not isinstance(family, LinesFamily)]))
    return body


class _Flight:
    """One collection that several scrapes may wait on, until its deadline."""

    def __init__(self, budget: float) -> None:
        self.done = threading.Event()
        self.ends = time.monotonic() + budget
        self.families: list[Metric] = []
        self.error: CollectionError | None = None
        self.timed_out = False
        self.abandoned = False


class _Worker:
    """A collection thread's mailbox: the flight to run next, and its wake-up."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.job: tuple[_Flight, float] | None = None


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
        self._abandoned = 0  # collections still running past their deadline, no longer joined
        self._idle: _Worker | None = None  # the collection thread waiting for the next flight
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
            if flight is not None and time.monotonic() >= flight.ends and self._abandoned < MAX_ABANDONED:
                # Stuck past its deadline: a scrape that comes now starts afresh rather than
                # inherit a timeout (a backend that recovered says so at once).
                flight.abandoned, self._abandoned, flight = True, self._abandoned + 1, None
            if flight is None:
                flight = self._flight = _Flight(budget)
                self._launch(flight, budget)
        if not flight.done.wait(budget):
            with self._lock:
                first, flight.timed_out = not flight.timed_out, True
            if first:
                self._record_failure(CollectionError("timeout", f"no answer within {budget:.1f}s"), budget)
            return self._health_families()
        if flight.error is None:
            return list(flight.families) + self._health_families()
        return flight.error.families + self._health_families()

    def _launch(self, flight: _Flight, budget: float) -> None:
        """Hand ``flight`` to the idle collection thread, or start one (with ``self._lock`` held).
        Keeping a thread between collections spares each scrape a thread start and its handshake."""
        if self._idle is not None:
            worker, self._idle = self._idle, None
        else:
            worker = _Worker()
            threading.Thread(target=self._work, args=(worker,), name="collection", daemon=True).start()
        worker.job = (flight, budget)
        worker.wake.set()

    def _work(self, worker: _Worker) -> None:
        while True:
            worker.wake.wait()
            assert worker.job is not None
            flight, budget = worker.job
            self._collect(flight, budget)
            with self._lock:
                if self._idle is not None:  # another one waits already (this one was stuck)
                    return
                worker.wake.clear()
                self._idle = worker
            if not worker.wake.wait(IDLE_WORKER_SECONDS):
                with self._lock:
                    if self._idle is worker:
                        self._idle = None
                        return
                # handed a flight between the timeout and the lock: its wake is set

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
            if self._flight is flight:
                self._flight = None
            if flight.abandoned:
                self._abandoned -= 1
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
        # LinesFamily: a scrape's fixed cost stays small beside a collection of a millisecond
        up, duration, errors = LinesFamily(self.up_metric), LinesFamily(self.duration_metric), LinesFamily(self.errors_metric)
        up.add((), "", 1.0 if self.failures.up() else 0.0)
        duration.add((), "", self._last_duration)
        for (_, kind), count in self.failures.errors().items():
            errors.add((kind,), label_block(("kind",), (kind,)), float(count))
        families: list[Metric] = [up, duration, errors]
        last_success = self.failures.last_success()
        if last_success is not None:
            last = LinesFamily(self.last_success_metric)
            last.add((), "", last_success)
            families.append(last)
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


def revision() -> str:
    """The source revision: ``$MEDOBS_REVISION`` (set by the image build), else the git commit of
    the checkout the package runs from, else ``unknown``."""
    if os.environ.get("MEDOBS_REVISION"):
        return os.environ["MEDOBS_REVISION"]
    git = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            head = (git / head[5:]).read_text().strip()
    except OSError:
        return "unknown"
    return head[:12] if re.fullmatch(r"[0-9a-f]{40}", head) else "unknown"


class SelfMetrics(Collector):
    """What every exporter says about itself: its build, and prometheus_client's process, GC and
    platform collectors::

        medobs_gpu_build_info{python="3.11.7",revision="2544c1b03d7a",version="0.1.0"} 1.0
        process_resident_memory_bytes 3.1e+07
        python_gc_collections_total{generation="0"} 112.0
    """

    def __init__(self, exporter: Exporter):
        entry = build_info(exporter.up_metric)
        build = gauge(entry)
        build.add_metric([__version__, revision(), platform.python_version()], 1)
        self.build = as_lines(build)
        self.runtime = CollectorRegistry(auto_describe=False)
        for collector in (ProcessCollector, GCCollector, PlatformCollector):
            collector(registry=self.runtime)

    def collect(self) -> Iterable[Metric]:
        yield self.build
        for family in self.runtime.collect():
            yield as_lines(family)


def as_lines(family: Metric) -> Metric:
    """``family`` as a :class:`LinesFamily` when it is a plain gauge or counter (its samples named
    as the family, one label set, no timestamps or exemplars); else ``family`` itself."""
    name = family.name + "_total" if family.type == "counter" else family.name
    samples = family.samples
    labels = tuple(sorted(samples[0].labels)) if samples else ()
    if family.type not in ("gauge", "counter") or any(
        s.name != name or s.timestamp is not None or s.exemplar or tuple(sorted(s.labels)) != labels for s in samples
    ):
        return family
    lines = LinesFamily(CatalogMetric(name, family.type, family.documentation, "self", labels))
    for sample in samples:
        values = [sample.labels[label] for label in labels]
        lines.add(values, label_block(labels, values) if labels else "", float(sample.value))
    return lines


@dataclass(frozen=True)
class WebOptions:
    """How an exporter serves: where, on which path, with which TLS and users (``--web.*``)."""

    listen: tuple[tuple[str, int], ...]
    telemetry_path: str = "/metrics"
    config: WebConfig = field(default_factory=WebConfig)
    idle_timeout: float = IDLE_TIMEOUT

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WebOptions:
        return cls(
            listen=tuple(dict.fromkeys(args.listen or [args.default_listen])),
            telemetry_path=args.telemetry_path,
            config=load_web_config(args.web_config_file),
            idle_timeout=args.idle_timeout,
        )


def make_handler(exporter: Exporter, extra: Sequence[Collector] = (), web: WebOptions | None = None) -> type[BaseHTTPRequestHandler]:
    """A request handler serving ``exporter`` (plus ``extra`` collectors and :class:`SelfMetrics`)
    on the telemetry path, a landing page on ``/`` and ``/healthz``; GET and HEAD, behind basic
    auth when ``web`` has users (``/healthz`` excepted: it says ``ok`` and nothing else)."""
    web = web or WebOptions(listen=())
    collectors = [*extra, SelfMetrics(exporter)]
    auth = BasicAuth(web.config.users) if web.config.users else None
    path_link = html.escape(web.telemetry_path, quote=True)
    landing = (
        f"<html><head><title>{exporter.describe_backend()} exporter</title></head><body>"
        f"<h1>medobs {exporter.describe_backend()} exporter</h1><p>version {__version__}</p>"
        f"<p><a href=\"{path_link}\">Metrics</a></p></body></html>\n"
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "medobs-exporter"
        protocol_version = "HTTP/1.1"  # keep-alive: a TLS handshake per connection, not per scrape
        wbufsize = -1  # headers and body leave in one write, flushed after each request ...
        disable_nagle_algorithm = True  # ... at once (Nagle with delayed ACKs holds a keep-alive answer 40 ms)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = urlsplit(self.path).path
            if path == "/healthz":
                self._answer(200, b"ok\n", {"Content-Type": "text/plain"})
            elif auth is not None and not auth.allows(self.headers.get("Authorization")):
                self._answer(401, b"Unauthorized\n", {"Content-Type": "text/plain", "WWW-Authenticate": 'Basic realm="medobs"'})
            elif path == web.telemetry_path:
                self._metrics()
            elif path == "/":
                self._answer(200, landing, {"Content-Type": "text/html; charset=utf-8"})
            else:
                self._answer(404, b"not found\n", {"Content-Type": "text/plain"})

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def _metrics(self) -> None:
            families = exporter.scrape(scrape_timeout(self.headers.get(TIMEOUT_HEADER)))
            for collector in collectors:
                families.extend(collector.collect())
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body = encode(families, encoder)
            headers = {"Content-Type": content_type}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                # Level 1: a fifth of level 9's time for a body a few percent larger.
                body, headers["Content-Encoding"] = gzip.compress(body, compresslevel=1), "gzip"
            self._answer(200, body, headers)

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {**headers, **web.config.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", self.address_string(), format % args)

    return Handler


def start_server(exporter: Exporter, listen: tuple[str, int], extra: Sequence[Collector] = (),
                 web: WebOptions | None = None) -> Server:
    """Serve ``exporter``'s metrics on ``listen`` in a background thread; the caller owns ``shutdown()``."""
    web = web or WebOptions(listen=(listen,))
    return start_http(make_handler(exporter, extra, web), listen, "metrics", tls=web.config.tls,
                      idle_timeout=web.idle_timeout)


def serve(
    exporter: Exporter,
    args: argparse.Namespace,
    extra: Sequence[Collector] = (),
    then: Callable[[], object] | None = None,
) -> int:
    """Serve as ``args`` say (:func:`add_server_arguments`) until SIGTERM or SIGINT; returns the
    exit status. ``then`` runs once every address listens (where a sidecar starts its other
    parts); what it raises stops the servers."""
    web = WebOptions.from_args(args)
    servers: list[Server] = []
    try:
        for listen in web.listen:
            servers.append(start_server(exporter, listen, extra, web))
        if then is not None:
            then()
        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        for server in servers:
            host, port = server.server_address[:2]
            shown = f"[{host}]" if ":" in host else host
            log.info("serving %s on %s://%s:%d%s", exporter.describe_backend(), web.config.scheme, shown, port,
                     web.telemetry_path)
        stopped.wait()
    finally:
        for server in servers:
            server.shutdown()
    return 0


# -- flags and credentials ----------------------------------------------------------------------


def listen_address(value: str) -> tuple[str, int]:
    """argparse type for ``HOST:PORT`` (``:PORT`` listens on every IPv4 interface, ``[::]:PORT`` on
    every interface, IPv6 and IPv4; ``[::1]:PORT`` on IPv6 loopback)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (for example 127.0.0.1:9419 or [::1]:9419)")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise argparse.ArgumentTypeError(f"{value!r}: write an IPv6 address in brackets, as [{host}]:{port}")
    return host.strip("[]") or "0.0.0.0", int(port)


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}


def byte_size(value: str) -> int:
    """argparse type: a size in bytes above 0, plain or with a unit (``65536``, ``500KB``, ``512MiB``)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
    unit = _SIZE_UNITS.get(match[2].upper()) if match else None
    if match is None or unit is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size above 0 (for example 65536, 500KB or 512MiB)")
    return int(match[1]) * unit


def format_size(value: int) -> str:
    """``value`` as a size flag writes it: 536870912 is 512MiB."""
    for unit in ("GiB", "MiB", "KiB"):
        if value % _SIZE_UNITS[unit.upper()] == 0:
            return f"{value // _SIZE_UNITS[unit.upper()]}{unit}"
    return str(value)


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


def telemetry_path(value: str) -> str:
    if not value.startswith("/") or value == "/" or value == "/healthz":
        raise argparse.ArgumentTypeError(f"{value!r} is not a path like /metrics (not / or /healthz)")
    return value


def add_server_arguments(parser: argparse.ArgumentParser, default_port: int, ceiling: float = 10.0) -> None:
    """The flags every exporter serves by, named as exporter-toolkit's (docs/exporters/conventions.md)."""
    web = parser.add_argument_group("serving (as node_exporter)")
    web.add_argument(
        "--web.listen-address", "--listen", dest="listen", action="append", type=listen_address, metavar="HOST:PORT",
        help=f"where to serve metrics; repeat for several ([::]:PORT for IPv6 and IPv4; default: :{default_port})",
    )
    web.add_argument(
        "--web.telemetry-path", dest="telemetry_path", type=telemetry_path, default="/metrics", metavar="PATH",
        help="the path metrics are served on (default: %(default)s)",
    )
    web.add_argument(
        "--web.config.file", dest="web_config_file", type=Path, metavar="FILE",
        help="exporter-toolkit web configuration: TLS, basic auth users (bcrypt), response headers",
    )
    web.add_argument(
        "--web.idle-timeout", dest="idle_timeout", type=positive_seconds, default=IDLE_TIMEOUT, metavar="SECONDS",
        help="close a connection idle (or sending a request) this long (default: %(default)s)",
    )
    parser.set_defaults(default_listen=("0.0.0.0", default_port))
    parser.add_argument(
        "--scrape-timeout-ceiling", type=positive_seconds, default=ceiling, metavar="SECONDS",
        help="longest a collection may take, whatever timeout Prometheus sends (default: %(default)s)",
    )
    logs.add_arguments(parser)


def read_secret(name: str, file_flag: Path | None = None) -> str | None:
    """A secret from ``--...-file``, ``$NAME_FILE`` or ``$NAME``, in that order (None if unset)."""
    path = file_flag or (Path(os.environ[f"{name}_FILE"]) if os.environ.get(f"{name}_FILE") else None)
    if path is not None:
        return read_text(path, what="secret file").strip()
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
