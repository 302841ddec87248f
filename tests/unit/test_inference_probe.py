"""The synthetic probe sees what a caller sees: latency at the right bucket, failures by reason."""

import json
import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from exporters.inference.probe import Probe, image_body, instances_in
from medobs.core.catalog import inference as catalog
from tests.conftest import free_port
from tests.inference_support import (
    MODEL,
    Exposition,
    serve_fixed_answer,
    simulated_tfserving,
)

SMALL_IMAGE = image_body((4, 4, 3))


@pytest.fixture
def sim():
    with simulated_tfserving(request_deadline=2.0) as running:
        yield running


def probe_for(url: str, timeout: float = 1.0, body: bytes = SMALL_IMAGE, models=(MODEL,)) -> tuple[Probe, CollectorRegistry]:
    registry = CollectorRegistry()
    return Probe(url, models, body, interval=0.05, timeout=timeout, registry=registry), registry


def test_the_default_golden_input_is_one_224x224_rgb_image():
    body = json.loads(image_body())
    (image,) = body["instances"]
    assert (len(image), len(image[0]), len(image[0][0])) == (224, 224, 3)
    assert instances_in(image_body()) == 1


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"signature_name": "serving_default"}', b"{not json"])
def test_a_golden_body_must_be_a_predict_request(body):
    with pytest.raises(ValueError):
        instances_in(body)


def test_injected_latency_lands_in_the_right_bucket(sim):
    server, url = sim
    probe, registry = probe_for(url)
    assert probe.probe(MODEL) == "ok"
    server.faults.extra_latency = 0.3
    assert probe.probe(MODEL) == "ok"
    out = Exposition(registry)
    buckets = out.buckets(catalog.PROBE_DURATION.name, model=MODEL, outcome="ok")
    assert buckets["0.1"] == 1  # the first one, before the fault
    assert buckets["0.25"] == 1 and buckets["0.5"] == 2  # the slow one: between 0.25 s and 0.5 s
    assert [float(le) for le in buckets if le != "+Inf"] == list(catalog.LATENCY_BUCKETS)
    assert out.value(catalog.PROBE_REQUESTS.name, model=MODEL, outcome="ok", code="200") == 2


def test_5xx_timeouts_and_unavailable_models_are_counted_by_reason(sim):
    server, url = sim
    probe, registry = probe_for(url, timeout=0.3)
    server.faults.error_ratio = 1.0
    assert probe.probe(MODEL) == "http_error"
    server.faults.error_ratio, server.faults.timeout_ratio = 0.0, 1.0
    started = time.monotonic()
    assert probe.probe(MODEL) == "timeout"  # TF Serving would hang for 2 s; the probe gives up at 0.3 s
    assert time.monotonic() - started < 1.0
    server.faults.timeout_ratio, server.faults.model_state = 0.0, "LOADING"
    assert probe.probe(MODEL) == "http_error"
    out = Exposition(registry)
    assert out.value(catalog.PROBE_REQUESTS.name, outcome="http_error", code="500") == 1
    assert out.value(catalog.PROBE_REQUESTS.name, outcome="timeout", code="") == 1
    assert out.value(catalog.PROBE_REQUESTS.name, outcome="http_error", code="404") == 1
    assert out.buckets(catalog.PROBE_DURATION.name, outcome="timeout")["0.25"] == 0


def test_tf_servings_own_deadline_counts_as_a_timeout(sim):
    server, url = sim
    server.request_deadline, server.faults.timeout_ratio = 0.2, 1.0
    probe, registry = probe_for(url, timeout=2.0)
    assert probe.probe(MODEL) == "timeout"
    assert Exposition(registry).value(catalog.PROBE_REQUESTS.name, outcome="timeout", code="504") == 1


def test_an_answer_that_is_not_json_is_a_malformed_response(caplog):
    with serve_fixed_answer(200, b"<html>ingress default backend</html>") as url, caplog.at_level(logging.WARNING):
        probe, registry = probe_for(url)
        assert probe.probe(MODEL) == "malformed_response"
        assert probe.probe(MODEL) == "malformed_response"
    assert Exposition(registry).value(catalog.PROBE_REQUESTS.name, outcome="malformed_response", code="200") == 2
    (record,) = caplog.records  # one line, not one per probe
    assert record.getMessage().startswith(f"probe of {MODEL}: malformed_response ({url}/v1/models/{MODEL}:predict: ")


def test_json_that_is_not_a_prediction_for_the_input_is_a_malformed_response():
    wrong_count = json.dumps({"predictions": [[0.1, 0.9], [0.2, 0.8]]}).encode()
    for body in (b'{"status": "ok"}', wrong_count):
        with serve_fixed_answer(200, body, "application/json") as url:
            probe, _ = probe_for(url)
            assert probe.probe(MODEL) == "malformed_response"


def test_tf_serving_unreachable_is_a_connection_error():
    probe, registry = probe_for(f"http://127.0.0.1:{free_port()}")
    assert probe.probe(MODEL) == "connection_error"
    assert Exposition(registry).value(catalog.PROBE_REQUESTS.name, outcome="connection_error", code="") == 1


def test_the_background_thread_probes_every_model_until_stopped(sim, caplog):
    server, url = sim
    probe, registry = probe_for(url, models=(MODEL, "densenet_ct"))
    with caplog.at_level(logging.INFO):
        probe.start()
        time.sleep(0.4)
        server.faults.error_ratio = 1.0
        time.sleep(0.3)
        server.faults.error_ratio = 0.0
        time.sleep(0.3)
        probe.stop()
    out = Exposition(registry)
    ok = out.value(catalog.PROBE_REQUESTS.name, model=MODEL, outcome="ok")
    assert ok >= 3
    assert out.value(catalog.PROBE_REQUESTS.name, model="densenet_ct", outcome="http_error", code="404") >= 3
    time.sleep(0.2)
    assert Exposition(registry).value(catalog.PROBE_REQUESTS.name, model=MODEL, outcome="ok") == ok  # stopped
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"probe of {MODEL}:")]
    assert messages[0].startswith(f"probe of {MODEL}: http_error (")
    assert messages[1:] == [f"probe of {MODEL}: ok again"]
