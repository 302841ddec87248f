"""The sidecar's collection against the simulated TF Serving: model status, bridge, up 0 with a reason."""

import json
import logging
import subprocess
import time

import pytest
import requests

from exporters.inference.collector import InferenceExporter
from medobs.core.catalog import inference as catalog
from tests.conftest import free_port, require_binary
from tests.inference_support import (
    MODEL,
    Exposition,
    serve_fixed_answer,
    simulated_tfserving,
)


@pytest.fixture
def sim():
    with simulated_tfserving() as running:
        yield running


def scrape(exporter: InferenceExporter) -> Exposition:
    return Exposition(exporter.scrape())


def predict(url: str, instances=1) -> requests.Response:
    return requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": [[0.5]] * instances}, timeout=5)


def test_model_available_then_unloaded_shows_the_state_change(sim):
    server, url = sim
    exporter = InferenceExporter(url, [MODEL])
    out = scrape(exporter)
    assert out.value(catalog.UP.name) == 1
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 1
    assert out.value(catalog.MODEL_VERSION_STATE.name, model=MODEL, version="1", state="AVAILABLE") == 1
    assert out.value(catalog.MODEL_VERSION_STATE.name, model=MODEL, version="1", state="END") == 0
    assert out.value(catalog.MODEL_VERSION_ERROR.name, model=MODEL, version="1", error_code="OK") == 1

    server.faults.model_state = "UNLOADING"
    out = scrape(exporter)
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 0
    assert out.value(catalog.MODEL_VERSION_STATE.name, model=MODEL, state="UNLOADING") == 1
    assert out.value(catalog.MODEL_VERSION_STATE.name, model=MODEL, state="AVAILABLE") == 0

    server.faults.model_state = None  # unloaded: TF Serving knows no version any more
    out = scrape(exporter)
    assert out.value(catalog.UP.name) == 1  # TF Serving answered; the model is simply not there
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 0
    assert out.label_sets(catalog.MODEL_VERSION_STATE.name) == []


def test_a_failed_load_shows_end_with_its_error_code(sim):
    server, url = sim
    server.faults.model_state, server.faults.error_code = "END", "NOT_FOUND"
    out = scrape(InferenceExporter(url, [MODEL]))
    assert out.value(catalog.MODEL_VERSION_STATE.name, model=MODEL, state="END") == 1
    assert out.value(catalog.MODEL_VERSION_ERROR.name, model=MODEL, version="1", error_code="NOT_FOUND") == 1
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 0


def test_a_model_tf_serving_never_heard_of_is_unavailable(sim):
    _, url = sim
    out = scrape(InferenceExporter(url, [MODEL, "densenet_ct"]))
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 1
    assert out.value(catalog.MODEL_AVAILABLE.name, model="densenet_ct") == 0


def test_injected_latency_shows_up_in_the_bridged_histogram_at_the_right_bucket(sim):
    server, url = sim
    server.faults.extra_latency = 0.3
    assert predict(url).status_code == 200
    out = scrape(InferenceExporter(url, [MODEL]))
    buckets = out.buckets(catalog.SERVER_REQUEST_DURATION.name, model=MODEL, api="predict", entrypoint="REST")
    # about 0.303 s: above 10*1.8^17 us = 0.218591 s, at most 10*1.8^18 us = 0.393464 s
    assert buckets["0.218591"] == 0 and buckets["0.393464"] == 1
    assert out.value(catalog.SERVER_REQUESTS.name, model=MODEL, status="OK") == 1


def test_tf_serving_unreachable_gives_up_0_and_every_model_unavailable(caplog):
    exporter = InferenceExporter(f"http://127.0.0.1:{free_port()}", [MODEL])
    with caplog.at_level(logging.WARNING):
        scrape(exporter)
        out = scrape(exporter)
    assert out.value(catalog.UP.name) == 0
    assert out.value(catalog.SCRAPE_ERRORS.name, kind="connection") == 2
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"TF Serving at {exporter.url}: connection error: cannot reach {exporter.url}/v1/models/{MODEL}: Connection refused"
    ]


def test_monitoring_disabled_gives_up_0_with_the_reason_and_keeps_the_model_status(caplog):
    with simulated_tfserving(monitoring=False) as (_, url), caplog.at_level(logging.WARNING):
        out = scrape(InferenceExporter(url, [MODEL]))
    assert out.value(catalog.UP.name) == 0
    assert out.value(catalog.SCRAPE_ERRORS.name, kind="monitoring_disabled") == 1
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 1
    assert out.label_sets(catalog.SERVER_REQUESTS.name) == []
    (record,) = caplog.records
    assert "/monitoring/prometheus/metrics answered 404: enable prometheus_config" in record.getMessage()


def test_a_custom_metrics_path(sim):
    _, url = sim
    out = scrape(InferenceExporter(url, [MODEL], metrics_path="/metrics"))
    assert out.value(catalog.SCRAPE_ERRORS.name, kind="monitoring_disabled") == 1


def test_malformed_exposition_gives_up_0_and_a_malformed_error(sim, caplog):
    server, url = sim
    server.metrics_text = lambda: '# TYPE :tensorflow:serving:request_count counter\n:tensorflow:serving:request_count{model_name="m" 1\n'
    with caplog.at_level(logging.WARNING):
        out = scrape(InferenceExporter(url, [MODEL]))
    assert out.value(catalog.UP.name) == 0
    assert out.value(catalog.SCRAPE_ERRORS.name, kind="malformed") == 1
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 1
    (record,) = caplog.records
    assert record.getMessage().startswith(f"TF Serving at {url}: malformed error: unreadable metrics from {url}/monitoring")


def test_not_tf_serving_at_all_is_a_counted_error():
    with serve_fixed_answer(200, b"<html>ingress default backend</html>") as url:
        out = scrape(InferenceExporter(url, [MODEL]))
    assert out.value(catalog.UP.name) == 0
    assert out.value(catalog.SCRAPE_ERRORS.name, kind="malformed") == 1
    with serve_fixed_answer(404, b"<html>not found</html>") as url:
        out = scrape(InferenceExporter(url, [MODEL]))
    assert out.value(catalog.SCRAPE_ERRORS.name, kind="http_404") == 1


def test_a_slow_tf_serving_is_a_timeout_within_the_scrape_budget(sim):
    server, url = sim
    original = server.model_status
    server.model_status = lambda *args: (time.sleep(1.0), original(*args))[1]
    exporter = InferenceExporter(url, [MODEL], ceiling=0.3)
    started = time.monotonic()
    out = scrape(exporter)
    assert time.monotonic() - started < 0.9
    assert out.value(catalog.UP.name) == 0
    assert out.value(catalog.SCRAPE_ERRORS.name, kind="timeout") == 1


# -- against a real Prometheus ------------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus scraping every second; yields (configure(targets), query)."""
    binary = require_binary("prometheus")
    port = free_port()
    processes = []

    def configure(jobs: dict[str, str]) -> None:
        scrape_configs = []
        for name, url in jobs.items():
            base, _, path = url.partition("//")[2].partition("/")
            scrape_configs.append({"job_name": name, "metrics_path": "/" + path, "static_configs": [{"targets": [base]}]})
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": scrape_configs}
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        processes.append(subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))

    def query(expr: str) -> list[dict]:
        answer = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=5)
        return answer.json()["data"]["result"]

    yield configure, query
    for process in processes:
        process.terminate()
        process.wait(10)
