"""The simulated TF Serving answers and counts the way TF Serving 2.10 does."""

import http.client
import json
import re
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from medobs.core.catalog import inference
from medobs.core.catalog import tfserving as tf
from medobs.simulator.tfserving import MODEL, TFServing
from tests.conftest import REPO
from tests.inference_support import answers_to_expect_continue

IMAGE = [[[0.5, 0.5, 0.5]] * 4] * 4  # a tiny image tensor; the simulator does not look at pixels


@pytest.fixture
def sim():
    server = TFServing(seed=7, base_latency=0.001, per_instance_latency=0.0005, request_deadline=0.3)
    http = server.start(("127.0.0.1", 0))
    yield server, f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()


def families(url):
    text = requests.get(f"{url}/monitoring/prometheus/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def predict(url, instances=(IMAGE,), model=MODEL):
    return requests.post(f"{url}/v1/models/{model}:predict", json={"instances": list(instances)}, timeout=5)


def test_model_status_as_tf_serving_writes_it(sim):
    server, url = sim
    assert requests.get(f"{url}/v1/models/{MODEL}", timeout=5).json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    missing = requests.get(f"{url}/v1/models/other", timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"error": "Could not find any versions of model other"}
    server.faults.model_state, server.faults.error_code = "END", "UNKNOWN"
    status = requests.get(f"{url}/v1/models/{MODEL}/versions/1", timeout=5).json()["model_version_status"][0]
    assert status["state"] == "END" and status["status"]["error_code"] == "UNKNOWN"
    assert status["status"]["error_message"].startswith("Failed to load servable")
    server.faults.model_state = None
    assert requests.get(f"{url}/v1/models/{MODEL}", timeout=5).status_code == 404


def test_predict_returns_one_prediction_per_instance(sim):
    _, url = sim
    answer = predict(url, [IMAGE, IMAGE, IMAGE])
    assert answer.status_code == 200
    predictions = answer.json()["predictions"]
    assert len(predictions) == 3
    assert all(sum(p) == pytest.approx(1, abs=1e-4) for p in predictions)


def test_predict_errors_as_tf_serving_reports_them(sim):
    server, url = sim
    bad = requests.post(f"{url}/v1/models/{MODEL}:predict", data=b"{not json", timeout=5)
    assert bad.status_code == 400 and "JSON Parse error" in bad.json()["error"]
    server.faults.model_state = "LOADING"
    unavailable = predict(url)
    assert unavailable.status_code == 404
    assert unavailable.json() == {"error": f"Servable not found for request: Latest({MODEL})"}
    server.faults.model_state, server.faults.error_ratio = "AVAILABLE", 1.0
    assert predict(url).status_code == 500
    server.faults.error_ratio, server.faults.timeout_ratio = 0.0, 1.0
    assert predict(url).status_code == 504


def test_metrics_follow_tf_serving_exposition(sim):
    server, url = sim
    found, text = families(url)
    assert "# HELP" not in text
    assert found[tf.REQUEST_LATENCY.name].samples == []  # TYPE line only before the first request
    for _ in range(3):
        predict(url)
    server.faults.error_ratio = 1.0
    predict(url)
    found, text = families(url)
    counts = {s.labels["status"]: s.value for s in found[tf.REQUEST_COUNT.name].samples}
    assert counts == {"OK": 3, "INTERNAL": 1}
    latency = found[tf.REQUEST_LATENCY.name].samples
    bounds = [s.labels["le"] for s in latency if s.name.endswith("_bucket")]
    assert bounds[:4] == ["10", "18", "32.4", "58.32"] and bounds[-1] == "+Inf" and len(bounds) == 34
    assert [float(b) for b in bounds[:-1]] == pytest.approx(tf.LATENCY_BUCKETS_US, rel=1e-5)
    count = next(s.value for s in latency if s.name.endswith("_count"))
    assert count == 3  # latency only for requests that succeeded
    labels = next(s.labels for s in latency if s.name.endswith("_count"))
    assert labels == {"model_name": MODEL, "API": "predict", "entrypoint": "REST"}
    assert f"{tf.BATCH_WRAPPED_RUN_COUNT}{{}} 3" in text


def test_the_simulator_doc_lists_exactly_the_families_exported_and_no_batch_size(sim):
    """docs/simulator.md's TF Serving table names every family the simulated server exports; none
    is a batch size (TF Serving 2.10 has none), which the doc says comes from the sidecar."""
    _, url = sim
    predict(url, [IMAGE, IMAGE])
    found, _ = families(url)
    section = (REPO / "docs" / "simulator.md").read_text().split("\n### TF Serving:")[1].split("\n### ")[0]
    assert set(re.findall(r"^\| `(:tensorflow:serving:[^`]+)`", section, re.M)) == set(found)
    assert not [name for name in found if "batch_size" in name]
    assert f"`{inference.BATCH_SIZE.name}`" in section


def test_latency_lands_in_the_right_bucket(sim):
    server, url = sim
    server.faults.extra_latency = 0.2
    predict(url)
    found, _ = families(url)
    buckets = {s.labels["le"]: s.value for s in found[tf.RUNTIME_LATENCY.name].samples if s.name.endswith("_bucket")}
    # about 0.2015 s = 201500 us: above the bound 121440 (10*1.8^16), below 218591 (10*1.8^17)
    assert buckets["121440"] == 0 and buckets["218591"] == 1


def test_monitoring_off_answers_404():
    server = TFServing(monitoring=False)
    http = server.start(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{http.server_address[1]}"
        assert requests.get(f"{url}/monitoring/prometheus/metrics", timeout=5).status_code == 404
        assert json.loads(requests.get(f"{url}/v1/models/{MODEL}", timeout=5).text)["model_version_status"]
    finally:
        http.shutdown()


def test_answers_do_not_wait_for_the_callers_delayed_ack(sim):
    """TF Serving writes headers and body in one go; an answer split in two small sends would wait
    for the caller's delayed ACK (about 40 ms) on every request of a keep-alive connection."""
    _, url = sim
    body = json.dumps({"instances": [IMAGE]}).encode()
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    started = time.perf_counter()
    for _ in range(20):
        connection.request("POST", f"/v1/models/{MODEL}:predict", body, {"Content-Type": "application/json"})
        assert connection.getresponse().read()
    elapsed = time.perf_counter() - started
    connection.close()
    # 20 answers of ~1.5 ms each; with the stall they would take over 0.8 s
    assert elapsed < 0.5, f"20 keep-alive predictions took {elapsed:.2f}s"


def test_expect_100_continue_is_answered_before_the_body(sim):
    _, url = sim
    body = json.dumps({"instances": [IMAGE]}).encode()
    first, rest = answers_to_expect_continue(url, f"/v1/models/{MODEL}:predict", body)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n")
    assert b"HTTP/1.1 200 OK\r\n" in first + rest and b'"predictions"' in rest
