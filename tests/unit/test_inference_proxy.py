"""The in-path proxy: answers what TF Serving answers, records every request, never fails one."""

import http.server
import json
import logging
import socket
import socketserver
import threading
import time

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporters.inference.proxy import InferenceProxy, Limits
from exporters.inference.recorder import RequestMetrics
from medobs.core.catalog import inference as catalog
from tests.conftest import free_port
from tests.inference_support import (
    MODEL,
    Exposition,
    answers_to_expect_continue,
    settled,
    simulated_tfserving,
)


class Proxied:
    """A proxy in front of ``upstream``, its registry, and its URL."""

    def __init__(self, upstream: str, timeout: float = 5.0, limits: Limits = Limits()):
        self.registry = CollectorRegistry()
        self.proxy = InferenceProxy(upstream, [MODEL], RequestMetrics(self.registry), timeout=timeout, limits=limits)
        self.server = self.proxy.start(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def predict(self, instances: int = 1, model: str = MODEL, session=requests) -> requests.Response:
        return session.post(f"{self.url}/v1/models/{model}:predict", json={"instances": [[0.5]] * instances}, timeout=10)

    def metrics(self) -> Exposition:
        return settled(self.registry)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def sim():
    with simulated_tfserving(request_deadline=0.3) as running:
        yield running


@pytest.fixture
def proxied(sim):
    proxy = Proxied(sim[1])
    yield sim[0], proxy
    proxy.close()


def test_answers_exactly_what_tf_serving_answers_and_records_batch_size_and_images(proxied):
    _, proxy = proxied
    with requests.Session() as session:  # one keep-alive connection through the proxy
        for instances in (1, 3, 3, 16):
            answer = proxy.predict(instances, session=session)
            assert answer.status_code == 200
            assert answer.headers["Content-Type"] == "application/json"
            assert len(answer.json()["predictions"]) == instances
    out = proxy.metrics()
    assert out.value(catalog.REQUESTS.name, model=MODEL, outcome="ok", code="200") == 4
    assert out.value(catalog.IMAGES.name, model=MODEL) == 23
    batch = out.buckets(catalog.BATCH_SIZE.name, model=MODEL)
    assert (batch["1.0"], batch["2.0"], batch["4.0"], batch["8.0"], batch["16.0"]) == (1, 1, 3, 3, 4)
    assert out.value(catalog.REQUEST_DURATION.count, model=MODEL, outcome="ok") == 4
    assert out.value(catalog.REQUESTS_IN_FLIGHT.name, model=MODEL) == 0


def test_injected_latency_shows_up_at_the_right_bucket(proxied):
    server, proxy = proxied
    server.faults.extra_latency = 0.3
    assert proxy.predict().status_code == 200
    buckets = proxy.metrics().buckets(catalog.REQUEST_DURATION.name, model=MODEL, outcome="ok")
    assert buckets["0.25"] == 0 and buckets["0.5"] == 1


def test_5xx_and_tf_servings_timeouts_are_recorded_by_outcome(proxied):
    server, proxy = proxied
    server.faults.error_ratio = 1.0
    failed = proxy.predict()
    assert failed.status_code == 500
    assert failed.json() == {"error": "Internal: CUDA runtime implicit initialization on GPU:0 failed"}
    server.faults.error_ratio, server.faults.timeout_ratio = 0.0, 1.0
    assert proxy.predict().status_code == 504  # TF Serving's own DEADLINE_EXCEEDED after 0.3 s
    server.faults.timeout_ratio, server.faults.model_state = 0.0, "LOADING"
    assert proxy.predict().status_code == 404
    out = proxy.metrics()
    assert out.value(catalog.REQUESTS.name, outcome="http_error", code="500") == 1
    assert out.value(catalog.REQUESTS.name, outcome="timeout", code="504") == 1
    assert out.value(catalog.REQUESTS.name, outcome="http_error", code="404") == 1
    assert out.buckets(catalog.REQUEST_DURATION.name, outcome="timeout")["0.25"] == 0  # errors are timed too
    assert out.value(catalog.IMAGES.name, model=MODEL) is None  # nothing was predicted


def test_a_hanging_tf_serving_gets_the_proxys_own_504(caplog):
    with simulated_tfserving(request_deadline=3.0) as (server, url):
        server.faults.timeout_ratio = 1.0
        proxy = Proxied(url, timeout=0.3)
        try:
            with caplog.at_level(logging.WARNING):
                started = time.monotonic()
                answer = proxy.predict()
                assert time.monotonic() - started < 2.0
        finally:
            proxy.close()
    assert answer.status_code == 504
    assert answer.json() == {"error": "TF Serving did not answer within 0.3s"}
    assert proxy.metrics().value(catalog.REQUESTS.name, outcome="timeout", code="504") == 1
    assert [r.getMessage() for r in caplog.records] == [f"proxy: TF Serving at {url}: no answer within 0.3s"]


def test_tf_serving_down_gives_502_and_a_connection_error(caplog):
    upstream = f"http://127.0.0.1:{free_port()}"
    proxy = Proxied(upstream)
    try:
        with caplog.at_level(logging.WARNING):
            answers = [proxy.predict() for _ in range(3)]
    finally:
        proxy.close()
    assert [a.status_code for a in answers] == [502, 502, 502]
    assert answers[0].json() == {"error": "cannot reach TF Serving: Connection refused"}
    assert proxy.metrics().value(catalog.REQUESTS.name, outcome="connection_error", code="502") == 3
    assert len(caplog.records) == 1  # one line, not one per request


def test_other_calls_pass_through_unrecorded_and_unknown_models_are_other(proxied):
    _, proxy = proxied
    status = requests.get(f"{proxy.url}/v1/models/{MODEL}", timeout=5)
    assert status.status_code == 200 and status.json()["model_version_status"][0]["state"] == "AVAILABLE"
    assert requests.get(f"{proxy.url}/monitoring/prometheus/metrics", timeout=5).text.startswith("# TYPE")
    assert proxy.predict(model="user-chosen-name").status_code == 404
    out = proxy.metrics()
    assert out.label_sets(catalog.REQUESTS.name) == [{"model": "other", "outcome": "http_error", "code": "404"}]


def test_versioned_paths_and_chunked_bodies_are_forwarded(proxied):
    _, proxy = proxied
    body = json.dumps({"instances": [[0.5], [0.5]]}).encode()
    answer = requests.post(f"{proxy.url}/v1/models/{MODEL}/versions/1:predict", data=iter([body[:10], body[10:]]), timeout=5)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    assert proxy.metrics().value(catalog.IMAGES.name, model=MODEL) == 2


def test_a_large_body_streams_to_tf_serving_and_is_counted():
    """A body over the part the proxy holds (64 KiB) goes on as it arrives, its length declared."""
    with simulated_tfserving() as (_, url):
        proxy = Proxied(url)
        try:
            body = json.dumps({"instances": [[0.25] * 1000] * 100}).encode()  # ~600 KB
            assert len(body) > 1 << 16
            answer = requests.post(f"{proxy.url}/v1/models/{MODEL}:predict", data=body, timeout=5)
            chunked = requests.post(f"{proxy.url}/v1/models/{MODEL}:predict", data=iter([body[:70000], body[70000:]]),
                                    timeout=5)
        finally:
            proxy.close()
    assert [len(a.json()["predictions"]) for a in (answer, chunked)] == [100, 100]
    assert proxy.metrics().value(catalog.IMAGES.name, model=MODEL) == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_gets_413_and_is_recorded(sim, chunked):
    proxy = Proxied(sim[1], limits=Limits(max_body=1000))
    body = json.dumps({"instances": [[0.5] * 100] * 10}).encode()
    try:
        answer = requests.post(f"{proxy.url}/v1/models/{MODEL}:predict", data=iter([body]) if chunked else body,
                               timeout=5)
        small = proxy.predict()
    finally:
        proxy.close()
    assert (answer.status_code, answer.json()) == (413, {"error": "request body over the proxy's limit of 1000 bytes"})
    assert small.status_code == 200
    assert proxy.metrics().value(catalog.REQUESTS.name, outcome="http_error", code="413") == 1


def test_an_answer_over_the_counted_size_streams_whole_and_is_counted_without_images():
    predictions = json.dumps({"predictions": [[0.5] * 100] * 500}).encode()  # ~250 KB
    upstream = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                           % (len(predictions), predictions))
    chunked_upstream = RawUpstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n"
                                   % (len(predictions), predictions))
    answers, recorded = [], []
    for source in (upstream, chunked_upstream):
        proxy = Proxied(source.url, limits=Limits(counted_answer=1000))
        try:
            answers.append(proxy.predict(500))
        finally:
            proxy.close()
            source.close()
        recorded.append(proxy.metrics())
    assert [a.content for a in answers] == [predictions, predictions]
    assert answers[0].headers["Content-Length"] == str(len(predictions))
    assert answers[1].headers["Transfer-Encoding"] == "chunked"  # the length was not known when it began
    for out in recorded:
        assert out.value(catalog.REQUESTS.name, outcome="ok", code="200") == 1
        assert out.value(catalog.IMAGES.name) is None  # not held, so not counted


def test_an_absolute_url_never_reaches_another_host(proxied):
    _, proxy = proxied
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"the request target must be a path" in answer


def test_a_head_request_gets_tf_servings_headers_without_a_body(proxied):
    _, proxy = proxied
    answer = requests.head(f"{proxy.url}/v1/models/{MODEL}", timeout=5)
    assert answer.status_code == 501 and answer.content == b""  # BaseHTTPRequestHandler's answer to HEAD


def test_expect_100_continue_is_answered_by_the_proxy_before_the_body(proxied):
    _, proxy = proxied
    body = json.dumps({"instances": [[0.5]]}).encode()
    first, rest = answers_to_expect_continue(proxy.url, f"/v1/models/{MODEL}:predict", body)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n")
    assert b"HTTP/1.1 200 OK\r\n" in first + rest and b'"predictions"' in rest
    assert proxy.metrics().value(catalog.REQUESTS.name, outcome="ok", code="200") == 1


def test_broken_metrics_never_fail_a_request(proxied, caplog):
    _, proxy = proxied
    proxy.proxy.metrics.duration = None  # every observation now raises
    with caplog.at_level(logging.ERROR), requests.Session() as session:  # one connection: handled in order
        answers = [proxy.predict(session=session) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(caplog.records) == 1 and "requests themselves are not affected" in caplog.records[0].getMessage()


def test_a_kept_alive_connection_that_tf_serving_closed_is_retried_once():
    """TF Serving closes idle keep-alive connections; the next request must not fail because of it."""
    served = []

    class ClosesAfterEachAnswer(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"predictions": [[1.0]]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True  # without saying so in a Connection header
            served.append(1)

        def log_message(self, *args):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ClosesAfterEachAnswer)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proxy = Proxied(f"http://127.0.0.1:{upstream.server_address[1]}")
    try:
        with requests.Session() as session:
            statuses = []
            for _ in range(3):
                statuses.append(proxy.predict(session=session).status_code)
                time.sleep(0.05)  # let the close reach the proxy's idle connection
    finally:
        proxy.close()
        upstream.shutdown()
        upstream.server_close()
    assert statuses == [200, 200, 200] and len(served) == 3


class RawUpstream:
    """A TCP server that reads one HTTP request per connection and writes ``answer`` as is."""

    def __init__(self, answer: bytes):
        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                length = 0
                while (line := self.rfile.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.rfile.read(length)
                self.wfile.write(answer)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


PREDICTIONS = json.dumps({"predictions": [[0.2, 0.8], [0.6, 0.4]]}).encode()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % 10 + PREDICTIONS[:10] + b"\r\n" + b"%x\r\n" % (len(PREDICTIONS) - 10) + PREDICTIONS[10:]
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + PREDICTIONS,
    ],
    ids=["chunked", "ends-with-the-connection"],
)
def test_answers_without_a_content_length_are_read_whole(answer):
    upstream = RawUpstream(answer)
    proxy = Proxied(upstream.url)
    try:
        answers = [proxy.predict(2) for _ in range(2)]
    finally:
        proxy.close()
        upstream.close()
    assert [(a.status_code, a.json()) for a in answers] == [(200, json.loads(PREDICTIONS))] * 2
    assert "Transfer-Encoding" not in answers[0].headers
    assert proxy.metrics().value(catalog.IMAGES.name, model=MODEL) == 4


@pytest.mark.parametrize(
    "answer,error",
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "TF Serving's answer is not HTTP: b'SSH-2.0-OpenSSH_9.2'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + PREDICTIONS,
         "TF Serving closed the connection in the middle of its answer"),
        (b"", "TF Serving closed the connection"),
    ],
    ids=["not-http", "cut-short", "closed"],
)
def test_a_broken_answer_is_a_502_and_a_connection_error(answer, error):
    upstream = RawUpstream(answer)
    proxy = Proxied(upstream.url)
    try:
        answered = proxy.predict()
    finally:
        proxy.close()
        upstream.close()
    assert (answered.status_code, answered.json()) == (502, {"error": f"cannot reach TF Serving: {error}"})
    assert proxy.metrics().value(catalog.REQUESTS.name, outcome="connection_error", code="502") == 1


def test_concurrent_requests_are_all_counted(proxied):
    _, proxy = proxied
    results = []

    def caller():
        with requests.Session() as session:
            results.extend(proxy.predict(2, session=session).status_code for _ in range(10))

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 60
    out = proxy.metrics()
    assert out.value(catalog.REQUESTS.name, outcome="ok") == 60
    assert out.value(catalog.IMAGES.name) == 120
