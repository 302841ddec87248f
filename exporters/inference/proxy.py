"""The optional in-path mode (``--proxy-listen``): a reverse proxy in front of TF Serving's REST API.

Callers point at the proxy instead of TF Serving; every ``:predict`` / ``:classify`` /
``:regress`` request is recorded as the caller saw it, errors and timeouts included, with the
families of :mod:`recorder` (the client helper records the same ones)::

    medobs_inference_requests_total{code="500",model="resnet50_chest_xray",outcome="http_error"} 4.0
    medobs_inference_request_duration_seconds_bucket{le="0.1",model="resnet50_chest_xray",outcome="ok"} 998.0
    medobs_inference_images_total{model="resnet50_chest_xray"} 3126.0

An asynchronous server (aiohttp, on uvloop when it is installed) in a thread of its own: one
event loop holds every caller's connection, none holds a thread. Bodies stream both ways through
bounded buffers (a 100 MB batch never sits in memory); an answer is held whole only when it
fits in ``limits.counted_answer`` (where its predictions are counted; a bigger one streams and
is counted without batch size). The proxy answers what TF Serving answered (status, headers,
body). ``timeout`` bounds each whole exchange, the caller's upload included: past it the proxy
answers 504 (408 when it was the caller's body that did not come; once the answer has started,
it resets the connection); TF Serving unreachable gives 502; all with a body in TF Serving's
``{"error": "..."}`` form. A body over
``limits.max_body`` gets 413, a header line over ``limits.max_header`` 431, a connection idle
for ``limits.idle_timeout`` (between requests, or while its request line and headers trickle in)
is closed. Metrics are recorded after the answer is written, and a failure in them is logged
once, never passed on to the request. Model names outside ``--model`` are recorded as
``model="other"`` so a caller cannot grow the label set.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from exporters.inference.recorder import (
    CONNECTION_ERROR,
    HTTP_ERROR,
    OK,
    TIMEOUT,
    RequestMetrics,
    outcome_of_status,
    predictions_in,
    reason,
)
from medobs import UserError

try:  # an optional speed-up (the inference extra installs it where it builds)
    import uvloop
except ImportError:  # pragma: no cover - the standard event loop works too, only slower
    uvloop = None

log = logging.getLogger("medobs.exporter.inference.proxy")

_INFERENCE_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/\d+|/labels/[^/:]+)?:(?:predict|classify|regress)", re.I)
#: Headers that concern one connection only (RFC 9110 section 7.6.1), or that the proxy sets itself.
_NOT_FORWARDED = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
})
OTHER_MODEL = "other"
#: The most a buffer on the way holds: a read from either side, the upstream socket's write buffer.
CHUNK = 1 << 16
#: A request body up to this size is held, so that it can be sent again when TF Serving closed the
#: kept-alive connection meanwhile; a bigger one streams (and is not retried).
RETRIED_BODY = CHUNK
#: Listen backlog: a burst of hundreds of callers connecting at once is queued, not refused.
BACKLOG = 1024
#: Idle keep-alive connections to TF Serving kept for later requests (more are closed).
MAX_IDLE_UPSTREAM = 256
_MAX_ANSWER_HEADERS = 256
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What the proxy accepts from a caller and holds of an answer."""

    max_body: int = 512 * MiB  #: request body bytes (413 above); a 64-image 224x224x3 JSON batch is ~100 MB
    max_header: int = 16384  #: bytes of the request line or of one header line (431 above)
    max_headers: int = 128  #: header lines in a request (431 above)
    idle_timeout: float = 60.0  #: seconds a connection may wait for (the rest of) its next request's head
    counted_answer: int = MiB  #: answers up to this size are held and their predictions counted


class UpstreamError(ConnectionError):
    """TF Serving's answer is broken (closed, cut short, not HTTP); the message says how."""

    def __init__(self, message: str):
        super().__init__(errno.EPROTO, message)


class RequestTooLarge(Exception):
    """The caller's body is over :attr:`Limits.max_body`."""


class CallerError(Exception):
    """Reading the caller's body failed (it went away, or its chunked framing is broken)."""


def _cause(error: OSError) -> str:
    """A network error in a few words: "Connection refused", not asyncio's "Connect call failed (...)"."""
    if isinstance(error, UpstreamError) or not error.errno:
        return reason(error)
    return os.strerror(error.errno)


class _Connection:
    """One keep-alive HTTP/1.1 connection to TF Serving, used by one exchange at a time.

    A lean client rather than aiohttp's: TF Serving's answers are plain (Content-Length, rarely
    chunked, no trailers that matter), and the proxy needs its bytes as they come, not a session.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.reusable = False

    def alive(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    async def send(self, head: bytes, body: AsyncIterator[bytes] | bytes, chunked: bool) -> None:
        """The request head, then its body (bounded: each write waits for the socket to drain)."""
        if isinstance(body, bytes):
            self.writer.write(head + body)
        else:
            self.writer.write(head)
            async for chunk in body:
                self.writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await self.writer.drain()
            if chunked:
                self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    async def answer_head(self) -> AnswerHead:
        """The answer's status and headers (1xx answers skipped)."""
        while True:
            status_line, *lines = (await self._head()).split(b"\r\n")
            version, status, *_ = status_line.split(None, 2) + [b""]
            if not version.startswith(b"HTTP/") or not status.isdigit():
                raise UpstreamError(f"TF Serving's answer is not HTTP: {status_line[:40]!r}")
            if len(lines) > _MAX_ANSWER_HEADERS:
                raise UpstreamError(f"TF Serving's answer has more than {_MAX_ANSWER_HEADERS} headers")
            if not status.startswith(b"1"):
                return AnswerHead(int(status), version == b"HTTP/1.0", lines)

    async def _head(self) -> bytes:
        """An answer's status line and headers, read at once (at most :data:`CHUNK` bytes)."""
        try:
            return await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:  # what came before the connection closed
            if not error.partial:
                raise UpstreamError("TF Serving closed the connection") from None
            if error.partial.startswith(b"HTTP/"):
                raise UpstreamError("TF Serving closed the connection in the middle of its answer") from None
            return error.partial  # not HTTP: said so by the caller
        except asyncio.LimitOverrunError:
            raise UpstreamError(f"TF Serving's answer has a head over {CHUNK} bytes") from None

    async def answer_body(self, head: AnswerHead, bodiless: bool) -> AsyncIterator[bytes]:
        """The answer's body in chunks of at most :data:`CHUNK` bytes, as its framing says."""
        if bodiless:
            pass
        elif head.chunked:
            while (size := await self._chunk_size()) > 0:
                while size:
                    chunk = await self.exactly(min(size, CHUNK))
                    size -= len(chunk)
                    yield chunk
                await self._line()
            while (await self._line()).strip():  # trailers, dropped
                pass
        elif head.length is not None:
            left = head.length
            while left > 0:
                chunk = await self.exactly(min(left, CHUNK))
                left -= len(chunk)
                yield chunk
        else:  # the answer ends where the connection does
            head.keep_alive = False
            while chunk := await self.reader.read(CHUNK):
                yield chunk
        self.reusable = head.keep_alive

    async def _line(self) -> bytes:
        try:
            return await self.reader.readline()
        except ValueError:  # over the reader's limit
            raise UpstreamError(f"TF Serving's answer has a line over {CHUNK} bytes") from None

    async def _chunk_size(self) -> int:
        line = await self._line()
        try:
            return int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise UpstreamError("TF Serving closed the connection in the middle of its answer" if not line
                                else "TF Serving's chunked answer is broken") from None

    async def exactly(self, size: int) -> bytes:
        try:
            return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise UpstreamError("TF Serving closed the connection in the middle of its answer") from None

    def close(self) -> None:
        self.writer.close()


class AnswerHead:
    """TF Serving's status, the headers passed on to the caller, and the answer's framing."""

    def __init__(self, status: int, http10: bool, lines: list[bytes]):
        self.status = status
        self.headers: list[tuple[str, str]] = []
        self.length: int | None = None
        self.chunked, self.gzip = False, False
        connection = ""
        for line in lines:
            if not line:
                continue
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip(), value.strip()
            lowered = name.lower()
            if lowered not in _NOT_FORWARDED:
                self.headers.append((name, value))
                self.gzip = self.gzip or (lowered == "content-encoding" and value.lower() == "gzip")
            elif lowered == "content-length":
                if not value.isdigit():
                    raise UpstreamError("TF Serving's answer has a bad Content-Length")
                self.length = int(value)
            elif lowered == "transfer-encoding":
                self.chunked = value.lower().endswith("chunked")
            elif lowered == "connection":
                connection = value.lower()
        self.keep_alive = connection == "keep-alive" if http10 else connection != "close"
        if self.chunked:
            self.length = None


class Upstream:
    """TF Serving's address and a pool of idle keep-alive connections to it."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self._idle: list[_Connection] = []

    async def connection(self, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection and whether it was kept alive from an earlier exchange."""
        while self._idle and not fresh:
            connection = self._idle.pop()
            if connection.alive():
                return connection, True
            connection.close()
        reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls, limit=CHUNK)
        return _Connection(reader, writer), False

    def release(self, connection: _Connection) -> None:
        """Back to the pool when its answer was read to the end and it stays open; closed otherwise."""
        if connection.reusable and connection.alive() and len(self._idle) < MAX_IDLE_UPSTREAM:
            connection.reusable = False
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


@dataclass
class _Answer:
    """What the caller got, for the metrics: status, outcome, predictions (None: not counted)."""

    status: int
    outcome: str
    instances: int | None = None
    streaming: web.StreamResponse | None = None  #: an answer that has begun to stream
    waiting_for_caller: bool = False  #: waiting for the caller's body (not for TF Serving)

    def begun(self) -> bool:
        return self.streaming is not None and self.streaming.prepared


_JSON = {"Content-Type": "application/json"}


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"error": message}).encode(), headers=_JSON)


def _closing(response: web.Response) -> web.Response:
    """``response``, after which the connection closes (what is left of the request is not read)."""
    response.force_close()
    return response


def _predictions(body: bytes, gzipped: bool, limit: int) -> int | None:
    """Predictions in a successful answer (None when it has none or cannot be read)."""
    try:
        if gzipped:  # at most ``limit`` bytes decompressed: a gzip bomb stays small
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = decompressor.decompress(body, limit)
            if decompressor.unconsumed_tail:
                return None
        return predictions_in(body)
    except Exception:  # a body we cannot decompress is the caller's business, not a proxy failure
        return None


class InferenceProxy:
    """Forwards to TF Serving at ``url`` and records inference requests in ``metrics``."""

    def __init__(self, url: str, models: Sequence[str], metrics: RequestMetrics, timeout: float = 30.0,
                 limits: Limits = Limits()):
        self.url, self.models, self.metrics, self.timeout = url.rstrip("/"), frozenset(models), metrics, timeout
        self.limits = limits
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

    def start(self, listen: tuple[str, int]) -> ProxyServer:
        """Serve in a background thread; the caller owns ``shutdown()``."""
        return ProxyServer(self, listen)

    # -- one request -------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest, upstream: Upstream) -> web.StreamResponse:
        """Relay ``request`` to TF Serving within the deadline, and record it."""
        started = time.perf_counter()
        if not request.raw_path.startswith("/"):  # absolute-form or "*": TF Serving's paths only, never another host
            return _closing(_error(400, "the request target must be a path"))
        model = self.model_label(request.raw_path)
        if model is not None:
            self.metrics.started(model)
        answer = _Answer(502, CONNECTION_ERROR)
        try:
            return await self._relay(request, upstream, answer)
        finally:
            if model is not None:
                self.metrics.finished(model, answer.outcome, str(answer.status), time.perf_counter() - started,
                                      answer.instances)

    async def _relay(self, request: web.BaseRequest, upstream: Upstream, answer: _Answer) -> web.StreamResponse:
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                connection, head = await self._exchange(request, upstream, answer)
                self.upstream_failed(None)
                answer.status, answer.outcome = head.status, outcome_of_status(head.status)
                response = await self._answer(request, connection, head, answer)
                upstream.release(connection)
                connection = None
                return response
        except TimeoutError:
            if answer.waiting_for_caller:  # a slow or stalled upload: the caller's doing, not TF Serving's
                answer.status, answer.outcome = 408, HTTP_ERROR
                return _closing(_error(408, f"the request body did not arrive within {self.timeout:g}s"))
            self.upstream_failed(TIMEOUT, f"no answer within {self.timeout:g}s")
            answer.outcome = TIMEOUT
            if answer.begun():  # all that is left is a reset
                return _reset(request, answer)
            answer.status = 504
            return _error(504, f"TF Serving did not answer within {self.timeout:g}s")
        except RequestTooLarge:
            answer.status, answer.outcome = 413, HTTP_ERROR
            return _closing(_error(413, f"request body over the proxy's limit of {self.limits.max_body} bytes"))
        except CallerError as error:
            answer.status, answer.outcome = 400, HTTP_ERROR
            return _closing(_error(400, f"bad request body: {error}"))
        except OSError as error:
            if answer.begun():  # the caller went away, or TF Serving did mid-answer
                answer.outcome = CONNECTION_ERROR
                return _reset(request, answer)
            self.upstream_failed(CONNECTION_ERROR, _cause(error))
            answer.status, answer.outcome = 502, CONNECTION_ERROR
            return _error(502, f"cannot reach TF Serving: {_cause(error)}")
        finally:
            if connection is not None:
                connection.close()

    async def _exchange(self, request: web.BaseRequest, upstream: Upstream,
                        answer: _Answer) -> tuple[_Connection, AnswerHead]:
        """Send the request; TF Serving's answer head. A small body is sent again, on a new
        connection, when a kept-alive one turns out closed by TF Serving."""
        length = request.content_length
        chunked = length is None and request.headers.get("Transfer-Encoding", "").lower().endswith("chunked")
        if length is not None and length > self.limits.max_body:
            raise RequestTooLarge
        if request.headers.get("Expect", "").lower() == "100-continue":  # the caller holds its body back until told
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body: AsyncIterator[bytes] | bytes = b""
        if chunked or (length or 0) > RETRIED_BODY:
            body = self._caller_body(request, answer)
        elif length:
            body = await self._read_small(request, answer)
        head = self._head(request, upstream, None if chunked else len(body) if isinstance(body, bytes) else length)
        fresh = False
        while True:
            connection, reused = await upstream.connection(fresh)
            try:
                await connection.send(head, body, chunked)
                return connection, await connection.answer_head()
            except (UpstreamError, ConnectionResetError, BrokenPipeError):
                connection.close()
                if reused and isinstance(body, bytes):  # TF Serving closed an idle kept-alive connection
                    fresh = True
                    continue
                raise
            except BaseException:
                connection.close()
                raise

    def _head(self, request: web.BaseRequest, upstream: Upstream, length: int | None) -> bytes:
        lines = [f"{request.method} {upstream.prefix}{request.raw_path} HTTP/1.1", f"Host: {upstream.host_header}"]
        lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() not in _NOT_FORWARDED]
        lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _read_small(self, request: web.BaseRequest, answer: _Answer) -> bytes:
        answer.waiting_for_caller = True  # until it is read: a deadline passing meanwhile is the caller's
        try:
            body = await request.read()
        except (OSError, ValueError, BadHttpMessage) as error:  # the caller went away or sent less
            raise CallerError(reason(error)) from None
        answer.waiting_for_caller = False
        return body

    async def _caller_body(self, request: web.BaseRequest, answer: _Answer) -> AsyncIterator[bytes]:
        """The caller's body as it arrives, at most :attr:`Limits.max_body` bytes."""
        received = 0
        while True:
            answer.waiting_for_caller = True
            try:
                chunk = await request.content.readany()
            except (OSError, ValueError, BadHttpMessage) as error:
                raise CallerError(reason(error)) from None
            answer.waiting_for_caller = False
            if not chunk:
                return
            received += len(chunk)
            if received > self.limits.max_body:
                raise RequestTooLarge
            yield chunk

    async def _answer(self, request: web.BaseRequest, connection: _Connection, head: AnswerHead,
                      answer: _Answer) -> web.StreamResponse:
        """TF Serving's answer to the caller: whole (and counted) when it fits in
        :attr:`Limits.counted_answer`, streamed otherwise."""
        bodiless = request.method == "HEAD" or head.status in (204, 304)
        held: list[bytes] = []
        if bodiless:
            chunks = None
        elif head.length is not None and head.length <= self.limits.counted_answer:  # the usual answer, at once
            held.append(await connection.exactly(head.length))
            connection.reusable, chunks = head.keep_alive, None
        else:
            chunks = connection.answer_body(head, bodiless)
            size = 0
            async for chunk in chunks:
                held.append(chunk)
                size += len(chunk)
                if size > self.limits.counted_answer:
                    break
            else:
                chunks = None
        if chunks is None and not bodiless:
            body = b"".join(held)
            if answer.outcome == OK:
                answer.instances = _predictions(body, head.gzip, self.limits.counted_answer)
            response = web.Response(status=head.status, headers=head.headers)
            response.body = body
            return response
        response = answer.streaming = web.StreamResponse(status=head.status, headers=head.headers)
        response.content_length = head.length
        await response.prepare(request)
        for chunk in held:
            await response.write(chunk)
        held.clear()
        if chunks is not None:
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        if bodiless:
            connection.reusable = head.keep_alive
        return response


def _reset(request: web.BaseRequest, answer: _Answer) -> web.StreamResponse:
    """End the caller's connection at once: an answer that has begun cannot be replaced."""
    if request.transport is not None:
        request.transport.abort()
    assert answer.streaming is not None
    return answer.streaming


class _CallerConnection(RequestHandler):
    """aiohttp's connection handler with the proxy's answers to a malformed request: 431 for a
    header over the limits (aiohttp says 400), and a debug line, not a traceback, per bad caller."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status == 400 and _header_too_large(exc):
            limits = self._manager.limits  # type: ignore[union-attr]
            status, message = 431, (f"Request Header Fields Too Large (a line over {limits.max_header} bytes"
                                    f" or over {limits.max_headers} headers)")
        if status != 500:
            log.debug("proxy: bad request from %s: %s", request.remote, message)
            return _closing(web.Response(status=status, text=f"{status} {message or ''}\n"))
        return super().handle_error(request, status, exc, message)


def _header_too_large(error: BaseException | None) -> bool:
    return isinstance(error, LineTooLong) or "Too many headers" in str(error)


class _Server(web.Server):
    def __init__(self, handler: Any, limits: Limits):
        self.limits = limits
        super().__init__(handler, max_line_size=limits.max_header, max_field_size=limits.max_header,
                         max_headers=limits.max_headers, keepalive_timeout=limits.idle_timeout,
                         auto_decompress=False, access_log=None)

    def __call__(self) -> RequestHandler:
        return _CallerConnection(self, loop=self._loop, **self._kwargs)


class ProxyServer:
    """The proxy's event loop, serving in a background thread named "proxy" until :meth:`shutdown`.

    Binds at once, so that an address in use is a UserError here, not a log line in the thread.
    """

    def __init__(self, proxy: InferenceProxy, listen: tuple[str, int]):
        try:
            family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
            self._socket = socket.create_server(listen, family=family, backlog=BACKLOG)
        except OSError as error:
            raise UserError(f"proxy: cannot listen on {listen[0]}:{listen[1]}: {error.strerror}") from None
        self.server_address = self._socket.getsockname()
        self._proxy = proxy
        self._loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),),
                                        name="proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise UserError(f"proxy: could not start serving on {listen[0]}:{listen[1]}")

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        upstream = Upstream(self._proxy.url)

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return await self._proxy.handle(request, upstream)

        runner = web.ServerRunner(
            _Server(handler, self._proxy.limits), handle_signals=False, shutdown_timeout=1.0,
        )
        await runner.setup()
        await web.SockSite(runner, self._socket, backlog=BACKLOG).start()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            upstream.close()
            await runner.cleanup()

    def shutdown(self) -> None:
        """Stop serving, close every connection, and end the thread."""
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        self._socket.close()
