"""What the inference sidecar's tests share: the simulated TF Serving and reading an exposition."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from medobs.core.catalog import inference as catalog
from medobs.simulator.tfserving import MODEL, TFServing

__all__ = [
    "MODEL", "Exposition", "answers_to_expect_continue", "serve_fixed_answer", "settled", "simulated_tfserving",
    "wait_until",
]


@contextlib.contextmanager
def simulated_tfserving(**options: object) -> Iterator[tuple[TFServing, str]]:
    """The simulated TF Serving on a free loopback port, fast unless ``options`` say otherwise."""
    settings = {"seed": 3, "base_latency": 0.002, "per_instance_latency": 0.0005, "request_deadline": 2.0}
    server = TFServing(**{**settings, **options})  # type: ignore[arg-type]
    http_server = server.start(("127.0.0.1", 0))
    try:
        yield server, f"http://127.0.0.1:{http_server.server_address[1]}"
    finally:
        http_server.shutdown()
        http_server.server_close()


@contextlib.contextmanager
def serve_fixed_answer(status: int, body: bytes, content_type: str = "text/html") -> Iterator[str]:
    """A server that answers every GET and POST with the same thing (a misrouted ingress, say)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Snapshot:
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class Exposition:
    """Samples of an exposition (text, a registry's or a list of families'), by name and labels."""

    def __init__(self, source: str | CollectorRegistry | Iterable[Metric]):
        if not isinstance(source, (str, CollectorRegistry)):
            registry = CollectorRegistry()
            registry.register(_Snapshot(list(source)))
            source = registry
        self.text = source if isinstance(source, str) else generate_latest(source).decode()
        self.families = {family.name: family for family in text_string_to_metric_families(self.text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample named ``name`` whose labels include ``labels`` (None if there is none)."""
        found = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0] if found else None

    def buckets(self, name: str, **labels: str) -> dict[str, float]:
        """A histogram's cumulative buckets by ``le``."""
        return {
            s.labels["le"]: s.value
            for s in self.samples
            if s.name == f"{name}_bucket" and labels.items() <= s.labels.items()
        }

    def label_sets(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self.samples if s.name == name]


def settled(registry: CollectorRegistry, seconds: float = 5.0) -> Exposition:
    """The request metrics once nothing is in flight: the proxy records just after answering."""
    deadline = time.monotonic() + seconds
    while True:
        out = Exposition(registry)
        in_flight = [s.value for s in out.samples if s.name == catalog.REQUESTS_IN_FLIGHT.name]
        if not any(in_flight) or time.monotonic() > deadline:
            return out
        time.sleep(0.01)


def wait_until(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """``check()``'s first true answer (a refused connection counts as not yet), polling."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = check()
        except requests.ConnectionError:
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not true within {seconds:.0f}s: {check}")


def answers_to_expect_continue(url: str, path: str, body: bytes) -> tuple[bytes, bytes]:
    """What a server sends to a POST that holds its body back for ``Expect: 100-continue`` (as
    curl does above 1 MB): first, before the body is sent; then, after it, to the end."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        first = connection.recv(1024)
        connection.sendall(body)  # Connection: close, the server closes after answering
        rest = b""
        while chunk := connection.recv(65536):
            rest += chunk
        return first, rest
