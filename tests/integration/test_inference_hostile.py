"""The inference proxy against hostile callers and a hostile TF Serving: the sidecar as a process
(``medobs exporter inference --proxy-listen``) keeps its memory, its deadline and its callers.

- five 100 MB bodies at once, relayed both ways, peak RSS of the sidecar (VmHWM) at most 150 MB;
- TF Serving trickling its answer under ``--proxy-timeout 5``: the caller's request ends within 8 s
  (504); a caller trickling its body, likewise (408);
- 256 callers connecting at once: no connection errors;
- oversized bodies and headers: 413 and 431; a caller trickling its head is dropped after
  ``--proxy-idle-timeout`` while others are served.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from medobs.core.catalog import inference as catalog
from tests.conftest import REPO, free_port
from tests.inference_support import Exposition, wait_until

MB = 1_000_000
BLOCK = b"x" * MB
MODEL = "resnet50_chest_xray"
TRICKLE_SECONDS = 0.5


class HostileTFServing(socketserver.ThreadingTCPServer):
    """A TF Serving stand-in whose behaviour the path picks:

    - ``/v1/models/sink:predict``: reads the whole body (Content-Length or chunked) and answers
      ``{"predictions": [[BYTES_RECEIVED]]}``, followed by ``X-Answer-MB`` megabytes of padding
      when the caller asks for it (an answer as big as the request);
    - ``/v1/models/trickle:predict``: answers its head, then one byte of its body every 0.5 s;
    - anything else: a one-prediction answer at once.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while request_line := self.rfile.readline():
            headers = {}
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            received = self._drain_body(headers)
            path = request_line.split()[1].decode()
            if "/trickle:" in path:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(TRICKLE_SECONDS)
                return
            padding = int(headers.get("x-answer-mb", 0)) if "/sink:" in path else 0
            answer = json.dumps({"predictions": [[received]]}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                             % (len(answer) + padding * MB, answer))
            for _ in range(padding):
                self.wfile.write(BLOCK)
            self.wfile.flush()

    def _drain_body(self, headers: dict[str, str]) -> int:
        received = 0
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                while size:
                    chunk = self.rfile.read(min(size, 1 << 16))
                    size -= len(chunk)
                    received += len(chunk)
                self.rfile.readline()
            self.rfile.readline()
            return received
        left = int(headers.get("content-length", 0))
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            left -= len(chunk)
            received += len(chunk)
        return received


class Sidecar:
    """``medobs exporter inference`` with its proxy in front of ``upstream``, as a process."""

    def __init__(self, upstream: str, *flags: str):
        self.metrics_port, self.proxy_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "medobs.cli", "exporter", "inference", "--listen", f"127.0.0.1:{self.metrics_port}",
             "--tfserving-url", upstream, "--model", MODEL, "--probe-interval", "0",
             "--proxy-listen", f"127.0.0.1:{self.proxy_port}", *flags],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        wait_until(lambda: requests.get(f"http://127.0.0.1:{self.proxy_port}/v1/models/{MODEL}", timeout=2))

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)[1]) / 1024

    def metrics(self) -> Exposition:
        return Exposition(requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=30)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=15)
        assert self.process.returncode == 0, stderr
        return stderr


@pytest.fixture(scope="module")
def sidecar() -> Iterator[Sidecar]:
    upstream = HostileTFServing()
    running = Sidecar(upstream.url, "--proxy-timeout", "5", "--proxy-idle-timeout", "2", "--proxy-max-body", "200MiB")
    yield running
    stderr = running.stop()
    upstream.shutdown()
    upstream.server_close()
    assert "Traceback" not in stderr, stderr


def upload(sidecar: Sidecar, megabytes: int, chunked: bool, answer_mb: int) -> tuple[int, int, int]:
    """POST ``megabytes`` through the proxy, 1 MB at a time: (status, bytes TF Serving got, answer bytes)."""
    connection = sidecar.connect()
    try:
        connection.putrequest("POST", "/v1/models/sink:predict")
        connection.putheader("X-Answer-MB", str(answer_mb))
        connection.putheader(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(megabytes * MB))))
        connection.endheaders()
        for _ in range(megabytes):
            connection.send(b"%x\r\n%b\r\n" % (MB, BLOCK) if chunked else BLOCK)
        if chunked:
            connection.send(b"0\r\n\r\n")
        answer = connection.getresponse()
        first = answer.read(64)
        size = len(first)
        while chunk := answer.read(1 << 20):
            size += len(chunk)
        received = re.match(rb'\{"predictions": \[\[(\d+)\]\]\}', first)
        return answer.status, int(received[1]) if received else -1, size
    finally:
        connection.close()


@pytest.mark.slow
def test_five_concurrent_100_mb_bodies_are_relayed_both_ways_in_at_most_150_mb(sidecar):
    results: list[tuple[int, int, int]] = []
    callers = [
        threading.Thread(target=lambda chunked=(i == 0): results.append(upload(sidecar, 100, chunked, answer_mb=100)))
        for i in range(5)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(120)
    assert len(results) == 5
    for status, received, answered in results:
        assert (status, received) == (200, 100 * MB)
        assert answered > 100 * MB  # the 100 MB answer came back whole, streamed
    assert sidecar.peak_rss_mb() <= 150
    out = sidecar.metrics()
    assert out.value(catalog.REQUESTS.name, model="other", outcome="ok", code="200") >= 5


def test_a_trickling_tf_serving_ends_the_callers_request_by_the_deadline(sidecar):
    started = time.monotonic()
    answer = requests.post(f"http://127.0.0.1:{sidecar.proxy_port}/v1/models/trickle:predict", json={"instances": [1]},
                           timeout=30)
    took = time.monotonic() - started
    assert answer.status_code == 504 and answer.json() == {"error": "TF Serving did not answer within 5s"}
    assert 4.5 < took < 8


def test_a_caller_trickling_its_body_gets_408_by_the_deadline_and_tf_serving_is_not_blamed(sidecar):
    before = sidecar.metrics().value(catalog.REQUESTS.name, model=MODEL, outcome="http_error", code="408") or 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", sidecar.proxy_port), timeout=10) as connection:
        connection.sendall(f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode())
        answer = b""
        while not answer and time.monotonic() - started < 9:
            connection.sendall(b"[")
            connection.settimeout(TRICKLE_SECONDS)
            try:
                answer = connection.recv(65536)
            except TimeoutError:
                pass
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") and b"the request body did not arrive within 5s" in answer
    assert 4.5 < took < 8
    after = sidecar.metrics().value(catalog.REQUESTS.name, model=MODEL, outcome="http_error", code="408")
    assert after == before + 1


def test_256_callers_at_once_get_no_connection_errors(sidecar):
    callers, per_caller = 256, 4
    gate = threading.Barrier(callers)
    outcomes: list[str] = []

    def caller() -> None:
        connection = sidecar.connect()
        gate.wait()
        try:
            for _ in range(per_caller):
                connection.request("POST", f"/v1/models/{MODEL}:predict", b'{"instances": [[1.0]]}',
                                   {"Content-Type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                outcomes.append(str(answer.status))
        except (OSError, http.client.HTTPException) as error:
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(set(outcomes)) == ["200"] and len(outcomes) == callers * per_caller


def raw_exchange(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        return connection.recv(65536)


def test_a_body_over_the_limit_is_refused_before_it_is_read(sidecar):
    answer = raw_exchange(sidecar.proxy_port, f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\n"
                          f"Content-Length: {300 * MB}\r\nExpect: 100-continue\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"request body over the proxy\'s limit of 209715200 bytes"' in answer


@pytest.mark.parametrize("head", [
    b"GET /v1/models/x HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /v1/models/x HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(200)) + b"\r\n",
], ids=["long-header", "too-many-headers"])
def test_oversized_headers_get_431(sidecar, head):
    assert raw_exchange(sidecar.proxy_port, head).split(b"\r\n")[0].endswith(b" 431 Request Header Fields Too Large")


def test_a_caller_trickling_its_head_is_dropped_and_blocks_no_one(sidecar):
    slow = socket.create_connection(("127.0.0.1", sidecar.proxy_port), timeout=10)
    slow.sendall(b"POST /v1/models/")
    started, dropped_after = time.monotonic(), None
    try:
        for _ in range(10):  # meanwhile other callers are served at once
            assert requests.get(f"http://127.0.0.1:{sidecar.proxy_port}/v1/models/{MODEL}", timeout=1).status_code == 200
        while dropped_after is None and time.monotonic() - started < 8:
            try:
                slow.sendall(b"a")  # one byte of the path every 0.2 s: never idle, never done
            except OSError:
                dropped_after = time.monotonic() - started
            time.sleep(0.2)
    finally:
        slow.close()
    assert dropped_after is not None and dropped_after < 4  # --proxy-idle-timeout 2


@pytest.mark.parametrize("head", [
    b"GARBAGE\r\n\r\n",
    b"GET /v1/models/x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET /v1/models/x HTTP/1.1\r\nbad header line\r\n\r\n",
], ids=["not-a-request-line", "negative-length", "header-without-colon"])
def test_malformed_requests_get_400_and_the_proxy_goes_on(sidecar, head):
    assert raw_exchange(sidecar.proxy_port, head).startswith(b"HTTP/1.0 400 Bad Request\r\n")
    assert requests.get(f"http://127.0.0.1:{sidecar.proxy_port}/v1/models/{MODEL}", timeout=5).status_code == 200
