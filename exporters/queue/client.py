"""HTTP to the broker, written for hostile answers: every read bounded by the collection deadline
(a watchdog closes the socket when it passes, so a trickling answer cannot hold a collection), by
a size limit (memory bounded while reading), credentials sent only to the origins trusted with
them, redirects to another origin refused; every failure a :class:`CollectionError` of a small
fixed set of kinds."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi

from medobs.core.runtime import CollectionError, Deadline, safe_url

#: Every kind of error the queue exporter counts (the ``kind`` label).
ERROR_KINDS = ("connection", "tls", "timeout", "http_401", "http_error", "malformed", "too_large")
#: The largest answer read by default (``--max-response-size``).
DEFAULT_MAX_BYTES = 32 << 20
#: Text handed to parsers in blocks of about this size, each ending at a line's end.
BLOCK = 1 << 20
_READ = 1 << 16
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 3

log = logging.getLogger("medobs.exporter.queue")

Origin = tuple[str, str, int]


def origin(url: str) -> Origin:
    """``(scheme, host, port)`` of ``url``, the port filled in."""
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class TlsOptions:
    """How to verify the broker's certificate and, optionally, present ours."""

    ca_file: Path | None = None
    insecure: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """The client TLS context: the CA file, else certifi's bundle (as requests verifies)."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else certifi.where())
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key) if self.client_key else None)
        return context


class HttpClient:
    """GETs bounded by a :class:`Deadline` end to end and by ``max_bytes``, over kept-alive connections.

    Basic-auth credentials (never logged) go only to the origins given to :meth:`trust`.
    """

    def __init__(
        self, user: str | None, password: str | None, tls: TlsOptions = TlsOptions(), max_bytes: int = DEFAULT_MAX_BYTES
    ):
        self._authorization = None
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._authorization = f"Basic {token}"
        self.max_bytes = max_bytes
        self._tls = tls.context()
        if tls.insecure:
            log.warning("the broker's TLS certificate is not verified (--insecure-skip-verify)")
        self._trusted: set[Origin] = set()
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def trust(self, url: str) -> None:
        """Send the credentials to ``url``'s origin."""
        self._trusted.add(origin(url))

    # -- reading ---------------------------------------------------------------------------

    def get_json(self, url: str, deadline: Deadline) -> Any:
        body = self._read(url, deadline)
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as error:
            raise _malformed_json(url, error) from None

    def get_items(self, url: str, deadline: Deadline) -> Iterator[Any]:
        """The items of a JSON list, decoded one at a time: a caller that keeps a part of each
        never holds them all (tens of thousands of queues or bindings)."""
        text = _decode(self._read(url, deadline), url)
        decode = _DECODER.raw_decode
        try:
            index = _SPACE.match(text).end()
            if text[index : index + 1] != "[":
                raise CollectionError("malformed", f"{safe_url(url)}: expected a JSON list")
            index = _SPACE.match(text, index + 1).end()
            closed = text[index : index + 1] == "]"
            if closed:
                index = _SPACE.match(text, index + 1).end()
            while not closed:
                item, index = decode(text, index)
                yield item
                index = _SPACE.match(text, index).end()
                separator = text[index : index + 1]
                if separator not in (",", "]"):
                    raise ValueError(f"expected , or ] at character {index}")
                closed = separator == "]"
                index = _SPACE.match(text, index + 1).end()
            if index < len(text):
                raise ValueError(f"extra data at character {index}")
        except (ValueError, RecursionError) as error:
            raise _malformed_json(url, error) from None

    def _read(self, url: str, deadline: Deadline) -> bytearray:
        """The whole answer (bounded by the size limit)."""
        body = bytearray()
        try:
            with self._body(url, deadline) as chunks:
                for chunk in chunks:
                    body += chunk
        except CollectionError:
            body = bytearray()  # the error's traceback keeps this frame alive, not what was read
            raise
        return body

    def text_blocks(self, url: str, deadline: Deadline) -> Iterator[str]:
        """The answer as text in blocks of whole lines (about :data:`BLOCK` characters each), so
        that a parser never holds more than a block of it."""
        pending = b""
        with self._body(url, deadline) as chunks:
            for chunk in chunks:
                pending += chunk
                if len(pending) >= BLOCK:
                    complete, newline, pending = pending.rpartition(b"\n")
                    if newline:
                        yield _decode(complete + newline, url)
            if pending:
                yield _decode(pending, url)

    @contextmanager
    def _body(self, url: str, deadline: Deadline) -> Iterator[Iterator[bytes]]:
        """The body of a 200 answer to GET ``url`` (same-origin redirects followed), chunk by chunk."""
        where = safe_url(url)
        for _ in range(_MAX_REDIRECTS + 1):
            with self._exchange(url, deadline) as (response, chunks):
                if response.status in _REDIRECTS:
                    target = urljoin(url, response.getheader("Location") or "")
                    if origin(target) != origin(url):
                        raise CollectionError(
                            "http_error",
                            f"{where}: redirected to another host ({safe_url(target)}): refused; "
                            "point the exporter at it directly",
                        )
                    url = target
                    continue
                _check_status(response, where)
                length = response.getheader("Content-Length")
                if length and length.isdigit() and int(length) > self.max_bytes:
                    raise _too_large(where, self.max_bytes)
                yield chunks
                return
        raise CollectionError("http_error", f"{where}: more than {_MAX_REDIRECTS} redirects")

    @contextmanager
    def _exchange(self, url: str, deadline: Deadline) -> Iterator[tuple[http.client.HTTPResponse, Iterator[bytes]]]:
        """One request and its answer; the connection goes back to the pool only when fully read."""
        where = safe_url(url)
        key = origin(url)
        parts = urlsplit(url)
        headers = {"Accept-Encoding": "identity"}
        if self._authorization and key in self._trusted:
            headers["Authorization"] = self._authorization
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = watchdog = None
        reusable = False
        try:
            for attempt in (1, 2):  # a kept-alive connection the broker closed meanwhile: once more on a new one
                connection, reused = self._connection(key, deadline)
                watchdog = _Watchdog(connection.sock, deadline)
                try:
                    connection.request("GET", target, headers=headers)
                    response = connection.getresponse()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    watchdog.cancel()
                    connection.close()
                    if not reused or attempt == 2:
                        raise
            received = _Counted(response, self.max_bytes, deadline, where)
            yield response, iter(received)
            reusable = received.complete and not response.will_close
        except CollectionError:
            raise
        except ssl.SSLCertVerificationError as error:
            raise CollectionError("tls", f"{where}: TLS error: certificate verify failed: {error.verify_message}") from None
        except ssl.SSLError as error:
            raise CollectionError("tls", f"{where}: TLS error: {error.reason or error}") from None
        except (OSError, http.client.HTTPException) as error:
            if deadline.expired() or isinstance(error, TimeoutError):
                raise CollectionError("timeout", f"{where}: no complete answer within {deadline.seconds:.1f}s") from None
            if isinstance(error, http.client.HTTPException):
                raise CollectionError("malformed", f"{where}: broken answer ({type(error).__name__})") from None
            raise CollectionError("connection", f"{where}: cannot connect: {error.strerror or error}") from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if connection is not None:
                if reusable and not deadline.expired():
                    with self._lock:
                        self._idle.setdefault(key, []).append(connection)
                else:
                    connection.close()

    def _connection(self, key: Origin, deadline: Deadline) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            connection = idle.pop() if idle else None
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(deadline.remaining())
            return connection, True
        scheme, host, port = key
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=deadline.remaining(), context=self._tls)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=deadline.remaining())
        connection.connect()
        return connection, False


class _Watchdog:
    """Shuts the socket down when the deadline passes, ending any read blocked on it."""

    def __init__(self, sock: socket.socket, deadline: Deadline):
        self.timer = threading.Timer(deadline.remaining(), _shutdown, (sock,))
        self.timer.daemon = True
        self.timer.start()

    def cancel(self) -> None:
        self.timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Counted:
    """The body's chunks as they arrive, refused past ``limit`` bytes or the deadline."""

    def __init__(self, response: http.client.HTTPResponse, limit: int, deadline: Deadline, where: str):
        self.response, self.limit, self.deadline, self.where = response, limit, deadline, where
        self.complete = False

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        while True:
            chunk = self.response.read1(_READ) if self.response.length != 0 else b""
            if self.deadline.expired():
                raise CollectionError("timeout", f"{self.where}: answer not complete within {self.deadline.seconds:.1f}s")
            if not chunk:
                if self.response.length:  # the connection closed before the promised length
                    raise CollectionError("malformed", f"{self.where}: truncated answer")
                self.complete = True
                self.response.close()  # frees the connection for the next request
                return
            received += len(chunk)
            if received > self.limit:
                raise _too_large(self.where, self.limit)
            yield chunk


def _check_status(response: http.client.HTTPResponse, where: str) -> None:
    if response.status == 401:
        raise CollectionError("http_401", f"{where}: 401 Unauthorized (check RABBITMQ_USER / RABBITMQ_PASSWORD)")
    if response.status == 403:
        raise CollectionError("http_error", f"{where}: 403 Forbidden (the user needs the monitoring tag)")
    if response.status != 200:
        raise CollectionError("http_error", f"{where}: HTTP {response.status} {response.reason[:80]}")


def _too_large(where: str, limit: int) -> CollectionError:
    return CollectionError("too_large", f"{where}: answer larger than {limit} bytes (--max-response-size)")


def _malformed_json(url: str, error: Exception) -> CollectionError:
    return CollectionError("malformed", f"{safe_url(url)}: malformed JSON ({str(error)[:120]})")


def _decode(data: bytes | bytearray, url: str) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise CollectionError("malformed", f"{safe_url(url)}: answer is not UTF-8") from None
