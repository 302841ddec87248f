"""The optional in-path mode (``--proxy-listen``): a reverse proxy in front of TF Serving's REST API.

Callers point at the proxy instead of TF Serving; every ``:predict`` / ``:classify`` /
``:regress`` request is recorded as the caller saw it, errors and timeouts included, with the
families of :mod:`recorder` (the client helper records the same ones)::

    medobs_inference_requests_total{code="500",model="resnet50_chest_xray",outcome="http_error"} 4.0
    medobs_inference_request_duration_seconds_bucket{le="0.1",model="resnet50_chest_xray",outcome="ok"} 998.0
    medobs_inference_images_total{model="resnet50_chest_xray"} 3126.0

The proxy answers exactly what TF Serving answered (status, headers, body). When TF Serving
does not answer within ``timeout`` it answers 504, when it cannot be reached 502, both with a
body in TF Serving's ``{"error": "..."}`` form. Metrics are recorded after the answer is
written, and a failure in them is logged once, never passed on to the request. Model names
outside ``--model`` are recorded as ``model="other"`` so a caller cannot grow the label set.
"""

from __future__ import annotations

import errno
import gzip
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from exporters.inference.recorder import (
    CONNECTION_ERROR,
    OK,
    TIMEOUT,
    RequestMetrics,
    outcome_of_status,
    predictions_in,
    reason,
)
from medobs.core.runtime import Server, start_http

log = logging.getLogger("medobs.exporter.inference.proxy")

_INFERENCE_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/\d+|/labels/[^/:]+)?:(?:predict|classify|regress)", re.I)
#: Headers that concern one connection only (RFC 9110 section 7.6.1), or that the proxy sets itself.
_NOT_FORWARDED = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
})
OTHER_MODEL = "other"


class UpstreamClosed(ConnectionError):
    """TF Serving closed the connection before answering."""

    def __init__(self, message: str):
        super().__init__(errno.ECONNRESET, message)


class Upstream:
    """One keep-alive HTTP/1.1 connection to TF Serving, owned by one proxy connection (one thread).

    A lean client rather than http.client: its email-based header parsing is most of what
    http.client costs, and TF Serving's answers are plain (Content-Length, no 1xx, no trailers).
    """

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._socket: socket.socket | None = None
        self._reader: Any = None

    def exchange(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request and read the whole answer: (status, headers, body)."""
        lines = [f"{method} {self._prefix}{path} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        request = "\r\n".join(lines).encode("latin-1") + body
        for attempt in (1, 2):
            reused = self._socket is not None
            try:
                self._connect()
                self._socket.sendall(request)  # type: ignore[union-attr]
                return self._read_answer()
            except (UpstreamClosed, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 1:  # TF Serving closed an idle kept-alive connection
                    continue
                raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def _connect(self) -> None:
        if self._socket is None:
            connection = socket.create_connection((self._host, self._port), timeout=self._timeout)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                connection = self._tls.wrap_socket(connection, server_hostname=self._host)
            self._socket, self._reader = connection, connection.makefile("rb")

    def _read_answer(self) -> tuple[int, list[tuple[str, str]], bytes]:
        status_line = self._reader.readline(65537)
        if not status_line:
            raise UpstreamClosed("TF Serving closed the connection")
        version, status, *_ = status_line.split(None, 2) + [b""]
        if not version.startswith(b"HTTP/") or not status.isdigit():
            raise ConnectionError(errno.EPROTO, f"TF Serving's answer is not HTTP: {status_line[:40]!r}")
        headers = []
        while (line := self._reader.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        fields = {name.lower(): value.lower() for name, value in headers}
        if "chunked" in fields.get("transfer-encoding", ""):
            payload = read_chunked(self._reader)
        elif "content-length" in fields:
            length = int(fields["content-length"])
            if len(payload := self._reader.read(length)) < length:
                raise ConnectionError(errno.ECONNABORTED, "TF Serving closed the connection in the middle of its answer")
        elif status in (b"204", b"304"):
            payload = b""
        else:  # the answer ends where the connection does
            payload, fields["connection"] = self._reader.read(), "close"
        if fields.get("connection") == "close" or version == b"HTTP/1.0" and fields.get("connection") != "keep-alive":
            self.close()
        return int(status), headers, payload

    def close(self) -> None:
        if self._socket is not None:
            self._reader.close()
            self._socket.close()
            self._socket = self._reader = None


def read_chunked(reader: Any) -> bytes:
    """A chunked body (RFC 9112 section 7.1), trailers read and dropped."""
    chunks = []
    while (size := int(reader.readline(1024).split(b";", 1)[0], 16)) > 0:
        chunks.append(reader.read(size))
        reader.readline(1024)
    while reader.readline(1024).strip():
        pass
    return b"".join(chunks)


class InferenceProxy:
    """Forwards to TF Serving at ``url`` and records inference requests in ``metrics``."""

    def __init__(self, url: str, models: Sequence[str], metrics: RequestMetrics, timeout: float = 30.0):
        self.url, self.models, self.metrics, self.timeout = url.rstrip("/"), frozenset(models), metrics, timeout
        self._upstream_failing: str | None = None

    def model_label(self, path: str) -> str | None:
        """The ``model`` label of an inference request's path (None: not an inference request)."""
        match = _INFERENCE_PATH.fullmatch(path.split("?", 1)[0])
        if match is None:
            return None
        return match.group(1) if match.group(1) in self.models else OTHER_MODEL

    def upstream_failed(self, kind: str | None, detail: str = "") -> None:
        """One log line when TF Serving stops answering (or answers again), not one per request."""
        if kind != self._upstream_failing:
            if kind:
                log.warning("proxy: TF Serving at %s: %s", self.url, detail)
            else:
                log.info("proxy: TF Serving at %s answers again", self.url)
            self._upstream_failing = kind

    def start(self, listen: tuple[str, int]) -> Server:
        """Serve in a background thread; the caller owns ``shutdown()``."""
        return start_http(_handler(self), listen, "proxy")


_JSON = [("Content-Type", "application/json")]


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def _predictions(outcome: str, headers: list[tuple[str, str]], body: bytes) -> int | None:
    """Predictions in a successful answer (None when it has none or cannot be read)."""
    if outcome != OK:
        return None
    try:
        encoding = next((value for name, value in headers if name.lower() == "content-encoding"), "")
        return predictions_in(gzip.decompress(body) if encoding == "gzip" else body)
    except Exception:  # a body we cannot decompress is the caller's business, not a proxy failure
        return None


def _handler(proxy: InferenceProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 1 << 16  # status line, headers and a small body leave in one write
        timeout = 300  # an idle client connection is closed after this many seconds

        def handle_expect_100(self) -> bool:
            answered = super().handle_expect_100()
            self.wfile.flush()  # "100 Continue" now, not after the body the caller holds back
            return answered

        def setup(self) -> None:
            super().setup()
            self.upstream = Upstream(proxy.url, proxy.timeout)

        def finish(self) -> None:
            self.upstream.close()
            super().finish()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            started = time.perf_counter()
            model = proxy.model_label(self.path)
            if model is not None:
                proxy.metrics.started(model)
            try:
                body = self._read_body()
            except ValueError as error:
                status, headers, payload = 400, _JSON, _error_body(f"bad request body: {error}")
                self.close_connection = True
                outcome = outcome_of_status(status)
            else:
                status, headers, payload, outcome = self._exchange(body)
            self._answer(status, headers, payload)
            if model is not None:
                seconds = time.perf_counter() - started
                proxy.metrics.finished(model, outcome, str(status), seconds, _predictions(outcome, headers, payload))

        do_POST = do_GET  # noqa: N815

        def _exchange(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes, str]:
            """TF Serving's answer and its outcome, or the proxy's own 504 / 502."""
            headers = {name: value for name, value in self.headers.items() if name.lower() not in _NOT_FORWARDED}
            try:
                status, answer_headers, payload = self.upstream.exchange(self.command, self.path, body, headers)
            except TimeoutError:
                proxy.upstream_failed(TIMEOUT, f"no answer within {proxy.timeout:g}s")
                return 504, _JSON, _error_body(f"TF Serving did not answer within {proxy.timeout:g}s"), TIMEOUT
            except OSError as error:
                proxy.upstream_failed(CONNECTION_ERROR, reason(error))
                return 502, _JSON, _error_body(f"cannot reach TF Serving: {reason(error)}"), CONNECTION_ERROR
            proxy.upstream_failed(None)
            return status, answer_headers, payload, outcome_of_status(status)

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return read_chunked(self.rfile)
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError("negative Content-Length")
            return self.rfile.read(length)

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            try:
                self.send_response_only(status)
                for name, value in headers:
                    if name.lower() not in _NOT_FORWARDED:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except OSError:  # the caller went away; nothing left to answer
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
