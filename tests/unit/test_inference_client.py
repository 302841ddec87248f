"""The client helper records what a calling service sees under the proxy's own names."""

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporters.inference.client import Call, instrument_predict, track_predict
from exporters.inference.proxy import InferenceProxy
from exporters.inference.recorder import RequestMetrics
from medobs.core.catalog import inference as catalog
from tests.conftest import free_port
from tests.inference_support import MODEL, Exposition, settled, simulated_tfserving


@pytest.fixture
def sim():
    with simulated_tfserving(request_deadline=2.0) as running:
        yield running


@pytest.fixture
def metrics():
    registry = CollectorRegistry()
    return RequestMetrics(registry), registry


def body(instances: int) -> dict:
    return {"instances": [[0.5]] * instances}


def test_the_decorator_records_outcome_latency_batch_size_and_images(sim, metrics):
    server, url = sim
    recorder, registry = metrics

    @instrument_predict(MODEL, recorder)
    def classify(images: int) -> requests.Response:
        return requests.post(f"{url}/v1/models/{MODEL}:predict", json=body(images), timeout=5)

    server.faults.extra_latency = 0.3
    assert classify(3).status_code == 200
    server.faults.extra_latency, server.faults.error_ratio = 0.0, 1.0
    assert classify(2).status_code == 500
    out = Exposition(registry)
    assert out.value(catalog.REQUESTS.name, model=MODEL, outcome="ok", code="200") == 1
    assert out.value(catalog.REQUESTS.name, model=MODEL, outcome="http_error", code="500") == 1
    assert out.buckets(catalog.REQUEST_DURATION.name, outcome="ok")["0.25"] == 0
    assert out.buckets(catalog.REQUEST_DURATION.name, outcome="ok")["0.5"] == 1
    assert out.value(catalog.IMAGES.name, model=MODEL) == 3  # the failed request predicted nothing
    assert out.buckets(catalog.BATCH_SIZE.name, model=MODEL)["4.0"] == 1
    assert classify.__name__ == "classify"


def test_the_context_manager_classifies_exceptions_and_raises_them_again(sim, metrics):
    server, url = sim
    recorder, registry = metrics
    server.faults.timeout_ratio = 1.0
    with pytest.raises(requests.Timeout), track_predict(MODEL, recorder):
        requests.post(f"{url}/v1/models/{MODEL}:predict", json=body(1), timeout=0.2)
    with pytest.raises(requests.HTTPError), track_predict(MODEL, recorder) as call:
        server.faults.timeout_ratio, server.faults.model_state = 0.0, "LOADING"
        answer = requests.post(f"{url}/v1/models/{MODEL}:predict", json=body(1), timeout=5)
        answer.raise_for_status()
        call.answered(answer)
    with pytest.raises(requests.ConnectionError), track_predict(MODEL, recorder):
        requests.post(f"http://127.0.0.1:{free_port()}/v1/models/{MODEL}:predict", json=body(1), timeout=5)
    with pytest.raises(requests.JSONDecodeError), track_predict(MODEL, recorder):
        requests.Response().json()
    with pytest.raises(KeyError), track_predict(MODEL, recorder):
        {}["predictions"]
    out = Exposition(registry)
    assert out.value(catalog.REQUESTS.name, outcome="timeout", code="") == 1
    assert out.value(catalog.REQUESTS.name, outcome="http_error", code="404") == 1
    assert out.value(catalog.REQUESTS.name, outcome="connection_error", code="") == 1
    assert out.value(catalog.REQUESTS.name, outcome="malformed_response", code="") == 1
    assert out.value(catalog.REQUESTS.name, outcome="error", code="") == 1
    assert out.value(catalog.REQUESTS_IN_FLIGHT.name, model=MODEL) == 0


def test_in_flight_while_the_call_runs(metrics):
    recorder, registry = metrics
    with track_predict(MODEL, recorder):
        assert Exposition(registry).value(catalog.REQUESTS_IN_FLIGHT.name, model=MODEL) == 1
    assert Exposition(registry).value(catalog.REQUESTS_IN_FLIGHT.name, model=MODEL) == 0
    assert Exposition(registry).value(catalog.REQUESTS.name, outcome="ok", code="") == 1  # gRPC-style: no status


@pytest.mark.parametrize(
    "answer,status,instances",
    [
        ({"predictions": [[0.1], [0.2]]}, 200, 2),
        ({"outputs": {"probabilities": [[0.1], [0.2], [0.3]]}}, 200, 3),
        ([[0.1], [0.2]], 200, 2),
        (None, None, None),
    ],
    ids=["row-answer", "columnar-answer", "predictions", "nothing"],
)
def test_what_a_call_can_be_told(answer, status, instances):
    call = Call()
    call.answered(answer)
    assert (call.status, call.instances) == (status, instances)


def test_client_and_proxy_expose_the_same_families_and_labels(sim):
    _, url = sim
    client_registry, proxy_registry = CollectorRegistry(), CollectorRegistry()
    proxy = InferenceProxy(url, [MODEL], RequestMetrics(proxy_registry))
    server = proxy.start(("127.0.0.1", 0))
    try:
        with track_predict(MODEL, RequestMetrics(client_registry)) as call:
            call.answered(requests.post(
                f"http://127.0.0.1:{server.server_address[1]}/v1/models/{MODEL}:predict", json=body(2), timeout=5
            ))
    finally:
        server.shutdown()
    client, sidecar = Exposition(client_registry), settled(proxy_registry)
    assert set(client.families) == set(sidecar.families)
    for name in (catalog.REQUESTS.name, catalog.REQUEST_DURATION.count, catalog.IMAGES.name):
        assert client.label_sets(name) == sidecar.label_sets(name)
    assert client.value(catalog.IMAGES.name) == sidecar.value(catalog.IMAGES.name) == 2


def test_broken_metrics_never_break_the_call(metrics, caplog):
    recorder, _ = metrics
    recorder.requests = None
    with track_predict(MODEL, recorder) as call:
        call.answered({"predictions": [[1.0]]})
    assert "requests themselves are not affected" in caplog.text
