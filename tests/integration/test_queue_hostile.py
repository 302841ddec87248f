"""The queue exporter against a hostile management API (tests/fake_rabbitmq.py): numbers beyond
the float range, answers of the wrong shape, a 100 MB flood, a trickle, a redirect to another
host, a node listener fishing for credentials. Each time: an exposition with ``up``, one log
line, bounded memory and time, recovery once the backend behaves."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporters.queue.plugin import PrometheusPlugin
from exporters.queue.client import HttpClient
from medobs.core.catalog import queue as catalog
from medobs.core.runtime import Deadline
from tests.conftest import REPO, free_port
from tests.fake_rabbitmq import VHOST, FakeRabbitMQ
from tests.queue_broker import scrape, serving, value, wait_for

PASSWORD = "hostile-pa55"
FAST = ("--topology-interval", "1", "--details-interval", "1", "--scrape-timeout-ceiling", "2")
QUEUE = {"vhost": VHOST, "queue": "medical_data", "role": "work"}
OTHER_QUEUE = {"vhost": VHOST, "queue": "reports", "role": "work"}


@pytest.fixture
def fake(monkeypatch) -> Iterator[FakeRabbitMQ]:
    monkeypatch.setenv("RABBITMQ_USER", "monitor")
    monkeypatch.setenv("RABBITMQ_PASSWORD", PASSWORD)
    with FakeRabbitMQ() as backend:
        yield backend


@contextmanager
def exporter_process(*flags: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``medobs exporter queue`` as its own process (its memory measured alone): (process, /metrics URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "medobs.cli", "exporter", "queue", "--listen", f"127.0.0.1:{port}", *flags],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "RABBITMQ_USER": "monitor", "RABBITMQ_PASSWORD": PASSWORD},
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _answers(url), bool, timeout=30, what="the exporter to listen")
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url.replace("/metrics", "/healthz"), timeout=5).ok
    except requests.ConnectionError:
        return False


def peak_rss_mb(process: subprocess.Popen) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def up(url: str) -> float | None:
    return value(scrape(url), catalog.UP.name)


def errors(url: str) -> dict[str, float]:
    samples = scrape(url)
    return {dict(labels)["kind"]: v for (name, labels), v in samples.items() if name == catalog.SCRAPE_ERRORS.name}


@pytest.mark.parametrize("source", ["management", "prometheus"])
@pytest.mark.parametrize("depth", ["1e400", "1" + "0" * 400, "-5", "2.5"])
def test_an_impossible_depth_leaves_that_queue_out_and_the_exposition_whole(fake, caplog, source, depth):
    fake.behaviour.depth = depth
    flags = ("--rabbitmq-url", fake.url, "--depth-source", source, *FAST)
    with caplog.at_level(logging.INFO, logger="medobs"), serving(*flags) as (_, url):
        answer = requests.get(url, timeout=10)
        assert answer.status_code == 200
        families = {family.name for family in text_string_to_metric_families(answer.text)}
        samples = scrape(url)
    assert catalog.UP.name in families
    assert value(samples, catalog.UP.name) == 1
    assert value(samples, catalog.MESSAGES_READY.name, **OTHER_QUEUE) == 1  # the sane queue is still served
    assert value(samples, catalog.MESSAGES_READY.name, **QUEUE) is None
    assert value(samples, catalog.READ_ERRORS.name, source="values", kind="malformed") >= 1
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "impossible numbers" in said[0].getMessage() and said[0].exc_info is None


@pytest.mark.parametrize("shape", [
    '["medical_data", "reports"]', "null", '[{"vhost": "/"}]', '[{"name": null, "vhost": "/"}]', "[null]",
    '{"items": "none"}', '[[1, 2]]',
])
def test_an_answer_of_the_wrong_shape_is_malformed_in_one_line(fake, caplog, shape):
    fake.behaviour.mode, fake.behaviour.shape = "shapes", shape
    with caplog.at_level(logging.INFO, logger="medobs"), serving("--rabbitmq-url", fake.url, *FAST) as (_, url):
        for _ in range(3):
            assert up(url) == 0
        assert set(errors(url)) == {"malformed"}
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "malformed error" in said[0].getMessage() and "/api/queues" in said[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"


@pytest.mark.slow
def test_a_100_mb_answer_keeps_memory_bounded_and_the_next_healthy_scrape_is_up(fake):
    fake.behaviour.mode = "flood"
    with exporter_process("--rabbitmq-url", fake.url, *FAST) as (process, url):
        assert up(url) == 0
        assert set(errors(url)) == {"too_large"}
        peak = peak_rss_mb(process)
        fake.behaviour.mode = "healthy"
        wait_for(lambda: up(url), lambda v: v == 1, timeout=10, what="up 1 after the flood")
    assert peak <= 120, f"peak RSS {peak:.0f} MB"
    assert len([path for path, _ in fake.behaviour.requests if path.startswith("/api/nodes")]) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("first", ["healthy", "trickle"])
def test_a_trickling_answer_holds_nothing_past_the_deadline(fake, first):
    fake.behaviour.mode = first
    with serving("--rabbitmq-url", fake.url, "--depth-source", "management", *FAST) as (_, url):
        if first == "healthy":
            wait_for(lambda: up(url), lambda v: v == 1, timeout=10, what="up 1")
            fake.behaviour.mode = "trickle"
        for _ in range(3):  # each scrape ends by the deadline, up 0, whatever the backend holds
            started = time.monotonic()
            assert up(url) == 0
            assert time.monotonic() - started < 3
        assert "timeout" in errors(url)
        fake.behaviour.mode = "healthy"
        recovering = time.monotonic()
        wait_for(lambda: up(url), lambda v: v == 1, timeout=10, what="up 1 once the backend is healthy")
        assert time.monotonic() - recovering < 10


def test_the_node_listener_gets_no_credentials_without_the_option(fake):
    with serving("--rabbitmq-url", fake.url, *FAST) as (_, url):
        samples = scrape(url)
    assert value(samples, catalog.MESSAGES_READY.name, **QUEUE) == 3  # read through the node's plugin
    assert fake.plugin_requests and all(auth is None for _, auth in fake.plugin_requests)
    assert all(auth is not None for _, auth in fake.behaviour.requests)  # the management API got them

    fake.plugin_requests.clear()
    with serving("--rabbitmq-url", fake.url, "--plugin-credentials", *FAST) as (_, url):
        scrape(url)
    assert fake.plugin_requests and all(auth is not None for _, auth in fake.plugin_requests)


def test_credentials_never_go_to_a_plain_http_listener_when_the_management_api_is_https(fake):
    client = HttpClient("monitor", PASSWORD)
    plugin = PrometheusPlugin(client, send_credentials=True, management_url="https://rabbitmq.example:15671")
    reading = plugin.read_depths("rabbit@a", fake.plugin_url, Deadline(5))
    assert reading.depths[(VHOST, "medical_data")].ready == 3
    assert fake.plugin_requests and all(auth is None for _, auth in fake.plugin_requests)


def test_a_redirect_to_another_host_is_refused(fake, caplog):
    with FakeRabbitMQ() as elsewhere:
        fake.behaviour.mode = "redirect"
        fake.behaviour.redirect_to = elsewhere.url.replace("127.0.0.1", "localhost")
        with caplog.at_level(logging.INFO, logger="medobs"), serving("--rabbitmq-url", fake.url, *FAST) as (_, url):
            assert up(url) == 0
            assert set(errors(url)) == {"http_error"}
        assert elsewhere.behaviour.requests == []
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "redirected to another host" in said[0] and "refused" in said[0], said
    assert PASSWORD not in said[0]
