"""What the simulator's HTTP parts share: a JSON-answering handler, a background server, client sessions."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests
from prometheus_client.core import Metric

from medobs.core.runtime import Server, start_http
from medobs.simulator.micrometer import exposition


class Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1, quiet (no access log), with helpers to answer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

    @property
    def route(self) -> str:
        """The request path without the query string."""
        return self.path.split("?", 1)[0]

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_json(self, status: int, payload: Any) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json")

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler], listen: tuple[str, int], name: str) -> Server:
    """Serve ``handler`` on ``listen`` in a background thread; the caller owns ``shutdown()``.

    A port that cannot be bound is a UserError naming the endpoint, not a traceback.
    """
    return start_http(handler, listen, name, "stop what uses it or pass another address (or --port-offset)")


def serve_metrics(listen: tuple[str, int], name: str, path: str,
                  families: Callable[[], list[Metric]]) -> Server:
    """Serve ``families()`` in the Prometheus text format on ``path`` (404 elsewhere)."""

    class MetricsHandler(Handler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.route == path:
                self.send_body(200, *exposition(families()))
            else:
                self.send_json(404, {"error": f"no page {self.route}; metrics are on {path}"})

    return serve(MetricsHandler, listen, name)


class Sessions:
    """One keep-alive ``requests.Session`` per thread (a Session is not thread-safe)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session
