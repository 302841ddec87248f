"""A hostile RabbitMQ for the queue exporter's tests: a management API and a node's Prometheus
listener on free ports that answer as the real ones do (the shapes of RabbitMQ 3.10's
``/api/nodes``, ``/api/queues`` paged and unpaged, ``/metrics/detailed``), until told to misbehave:
overflow, trickle, flood, redirect, or answer with the wrong shape.

Every request is recorded (path and Authorization header) so that tests can say who got the
credentials.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NODE = "rabbit@127.0.0.1"
VHOST = "medical-platform"


@dataclass
class Behaviour:
    """What the fake does; tests change it while the exporter runs.

    ``mode``: ``healthy``; ``trickle`` (a byte a second); ``flood`` (``flood_bytes`` of JSON-looking
    text); ``redirect`` (302 to ``redirect_to`` + the path); ``shapes`` (``/api/queues`` answers
    ``shape``). ``depth``: the raw JSON / exposition text of one queue's ready count.
    """

    mode: str = "healthy"
    depth: str = "3"
    shape: str = '["medical_data", "reports"]'
    flood_bytes: int = 100 * 10**6
    redirect_to: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)


class FakeRabbitMQ:
    """The management API at :attr:`url`, and one node whose plugin listens at :attr:`plugin_url`."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.plugin_requests: list[tuple[str, str | None]] = []
        self._servers = [_server(self._management), _server(self._plugin)]
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.plugin_port = self._servers[1].server_address[1]
        self.plugin_url = f"http://127.0.0.1:{self.plugin_port}"

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeRabbitMQ:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- the management API ----------------------------------------------------------------

    def _management(self, handler: BaseHTTPRequestHandler) -> None:
        behaviour = self.behaviour
        behaviour.requests.append((handler.path, handler.headers.get("Authorization")))
        parts = urlsplit(handler.path)
        if behaviour.mode == "redirect":
            handler.send_response(302)
            handler.send_header("Location", behaviour.redirect_to + handler.path)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if behaviour.mode == "trickle":
            return _trickle(handler)
        if behaviour.mode == "flood":
            return _flood(handler, behaviour.flood_bytes)
        if parts.path == "/api/nodes":
            body = json.dumps([{
                "name": NODE, "running": True,
                "contexts": [
                    {"description": "RabbitMQ Management", "path": "/", "port": "15672", "protocol": "http"},
                    {"description": "RabbitMQ Prometheus", "path": "/", "port": str(self.plugin_port), "protocol": "http/prometheus"},
                ],
            }])
        elif parts.path == "/api/queues":
            if behaviour.mode == "shapes":
                body = behaviour.shape
            else:
                body = self._queues(parse_qs(parts.query))
        elif parts.path in ("/api/policies", "/api/exchanges", "/api/bindings"):
            body = "[]"
        else:
            return _send(handler, 404, '{"error":"Object Not Found","reason":"Not Found"}')
        _send(handler, 200, body)

    def _queues(self, query: dict[str, list[str]]) -> str:
        items = ",".join(
            f'{{"name":"{name}","vhost":"{VHOST}","node":"{NODE}","state":"running","type":"classic",'
            f'"arguments":{{}},"messages_ready":{ready},"messages_unacknowledged":0}}'
            for name, ready in (("medical_data", self.behaviour.depth), ("reports", "1"))
        )
        if "page" not in query:
            return f"[{items}]"
        return f'{{"items":[{items}],"page":1,"page_count":1,"page_size":500,"total_count":2,"item_count":2}}'

    # -- the node's Prometheus plugin ------------------------------------------------------

    def _plugin(self, handler: BaseHTTPRequestHandler) -> None:
        self.plugin_requests.append((handler.path, handler.headers.get("Authorization")))
        if urlsplit(handler.path).path != "/metrics/detailed":
            return _send(handler, 200, "# no dead-letter counters on this node\n", "text/plain")
        lines = []
        for name, ready in (("medical_data", self.behaviour.depth), ("reports", "1")):
            labels = f'vhost="{VHOST}",queue="{name}"'
            lines += [
                f"rabbitmq_detailed_queue_messages_ready{{{labels}}} {ready}",
                f"rabbitmq_detailed_queue_messages_unacked{{{labels}}} 0",
                f"rabbitmq_detailed_queue_consumers{{{labels}}} 1",
            ]
        _send(handler, 200, "# TYPE rabbitmq_detailed_queue_messages_ready gauge\n" + "\n".join(lines) + "\n", "text/plain")


def _server(answer) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            try:
                answer(self)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the exporter gave up on us: as it should

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


def _send(handler: BaseHTTPRequestHandler, status: int, body: str, content_type: str = "application/json") -> None:
    data = body.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _trickle(handler: BaseHTTPRequestHandler, seconds: float = 60) -> None:
    """A valid-looking JSON answer of unknown length, one byte a second."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    for byte in (b"[" + b" " * int(seconds))[: int(seconds)]:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(1)


def _flood(handler: BaseHTTPRequestHandler, total: int) -> None:
    """``total`` bytes of a JSON list that never ends, without a Content-Length."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    block = b'{"name":"flood","vhost":"/"},' * 2048
    handler.wfile.write(b"[")
    for _ in range(total // len(block)):
        handler.wfile.write(block)
