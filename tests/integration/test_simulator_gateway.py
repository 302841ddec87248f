"""The simulated gateway against the real PostgreSQL and RabbitMQ: routes, micrometer metrics, faults.

The traffic loop is off here (request_rate 0): each test sends its own requests and checks the
gateway's own /actuator/prometheus counts them exactly.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from medobs.core.catalog import gateway as catalog
from medobs.core.catalog import tfserving
from medobs.simulator.gateway import Gateway
from medobs.simulator.scenarios import SCENARIOS, Knobs
from medobs.simulator.tfserving import MODEL, SAMPLE_IMAGE, TFServing
from tests.simulator_support import ADMIN_DSN, running_platform, sample_sum, scrape

HTTP = catalog.HTTP_SERVER_REQUESTS
ROUTED = catalog.GATEWAY_REQUESTS


@pytest.fixture(scope="module")
def platform():
    with running_platform() as running:
        yield running


@pytest.fixture(autouse=True)
def healthy_again(platform):
    yield
    platform.apply("test", Knobs(request_rate=0))


def call(platform, method, path, body=None):
    return requests.request(method, platform.urls["gateway"] + path, json=body, timeout=30)


def metrics(platform):
    return scrape(platform.urls["gateway"] + "/actuator/prometheus")


def count(found, **labels):
    return sample_sum(found, HTTP.count, **labels)


def upload(platform, images=2):
    answer = call(platform, "POST", "/api/v1/studies", {"modality": "CR", "images": images})
    assert answer.status_code == 201, answer.text
    return answer.json()["studyId"]


def test_each_route_is_timed_by_template_method_status_and_outcome(platform):
    study = upload(platform)
    assert call(platform, "GET", f"/api/v1/studies/{study}").json()["images"] == 2
    assert call(platform, "GET", f"/api/v1/studies/{study}/findings").json()["studyId"] == study
    missing = call(platform, "GET", "/api/v1/studies/999999999")
    assert missing.status_code == 404 and missing.json()["path"] == "/api/v1/studies/999999999"
    prediction = call(platform, "POST", "/api/v1/inference/predict", {"instances": [SAMPLE_IMAGE] * 3})
    assert len(prediction.json()["predictions"]) == 3
    assert call(platform, "GET", "/no/such/page").status_code == 404
    assert call(platform, "GET", "/actuator/health").json()["status"] == "UP"

    found = metrics(platform)
    tags = dict(application="api-gateway", exception="None")
    assert count(found, uri="/api/v1/studies", method="POST", status="201", outcome="SUCCESS", **tags) >= 1
    assert count(found, uri="/api/v1/studies/{studyId}", method="GET", status="200", outcome="SUCCESS") >= 1
    assert count(found, uri="/api/v1/studies/{studyId}", status="404", outcome="CLIENT_ERROR", **tags) >= 1
    assert count(found, uri="/api/v1/studies/{studyId}/findings", status="200") >= 1
    assert count(found, uri="/api/v1/inference/predict", method="POST", status="200", **tags) >= 1
    assert count(found, uri="NOT_FOUND", status="404", outcome="CLIENT_ERROR", exception="ResponseStatusException") >= 1
    uris = {s.labels["uri"] for s in found[HTTP.name].samples}
    assert not any(uri.startswith("/actuator") for uri in uris)  # the platform's MeterFilter
    assert not any(char.isdigit() for uri in uris for char in uri.replace("v1", ""))  # templates, no ids
    # buckets: exactly the platform's SLO bounds, as micrometer writes them
    bounds = {s.labels["le"] for s in found[HTTP.name].samples if s.name == HTTP.bucket}
    assert bounds == {catalog.micrometer_le(b) for b in catalog.SLO_BUCKETS} | {"+Inf"}
    assert sample_sum(found, catalog.HTTP_SERVER_REQUESTS_MAX.name,
                      uri="/api/v1/inference/predict") > 0
    # Spring Cloud Gateway's own timer: routes, HttpStatus series and names
    assert sample_sum(found, ROUTED.count, routeId="study-service", routeUri="lb://study-service",
                      httpStatusCode="404", outcome="CLIENT_ERROR", status="NOT_FOUND") >= 1
    assert sample_sum(found, ROUTED.count, routeId="ml-inference", httpMethod="POST",
                      httpStatusCode="200", outcome="SUCCESSFUL", status="OK",
                      routeUri=platform.urls["tfserving"]) >= 1
    # the services' pools are on the same actuator
    pools = {s.labels["application"] for s in found[catalog.HIKARI_MAX.name].samples}
    assert pools == {"study-service", "inference-worker"}


def test_error_burst_answers_exactly_the_injected_share_with_500(platform):
    study = upload(platform)
    before = metrics(platform)
    platform.apply("error-burst", SCENARIOS["error-burst"].knobs.with_changes({"request_rate": 0}))
    paths = [f"/api/v1/studies/{study}", f"/api/v1/studies/{study}/findings"] * 200
    with ThreadPoolExecutor(8) as pool:  # concurrent, as real traffic arrives
        statuses = list(pool.map(lambda path: call(platform, "GET", path).status_code, paths))
    after = metrics(platform)

    def delta(**labels):
        return count(after, **labels) - count(before, **labels)

    errors = delta(status="500", outcome="SERVER_ERROR", exception="None")
    total = delta()
    assert total == len(paths) == 400
    assert abs(errors - 0.25 * total) <= 1  # the gateway's own metrics show the injected share
    assert statuses.count(500) == errors  # and it is what the clients saw
    assert sample_sum(after, ROUTED.count, outcome="SERVER_ERROR", status="INTERNAL_SERVER_ERROR") \
        - sample_sum(before, ROUTED.count, outcome="SERVER_ERROR", status="INTERNAL_SERVER_ERROR") \
        == errors
    platform.apply("healthy", Knobs(request_rate=0))
    assert all(call(platform, "GET", f"/api/v1/studies/{study}").status_code == 200 for _ in range(20))


def test_latency_regression_moves_requests_past_the_half_second_bucket(platform):
    study = upload(platform)
    labels = dict(uri="/api/v1/studies/{studyId}", status="200")

    def buckets():
        found = metrics(platform)
        return {le: sample_sum(found, HTTP.bucket, le=le, **labels) for le in ("0.25", "0.5", "1.0")}

    before = buckets()
    platform.apply("latency-regression", SCENARIOS["latency-regression"].knobs.with_changes({"request_rate": 0}))
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: call(platform, "GET", f"/api/v1/studies/{study}"), range(10)))
    assert {a.status_code for a in answers} == {200}
    after = buckets()
    assert after["0.25"] == before["0.25"] and after["0.5"] == before["0.5"]  # none under 0.5 s any more
    assert after["1.0"] - before["1.0"] == 10


def test_model_unavailable_passes_tf_servings_404_through(platform):
    platform.apply("model-unavailable", SCENARIOS["model-unavailable"].knobs.with_changes({"request_rate": 0}))
    status = requests.get(f"{platform.urls['tfserving']}/v1/models/{MODEL}", timeout=10).json()
    assert status["model_version_status"][0]["state"] == "END"
    answer = call(platform, "POST", "/api/v1/inference/predict", {"instances": [SAMPLE_IMAGE]})
    assert answer.status_code == 404
    assert answer.json() == {"error": f"Servable not found for request: Latest({MODEL})"}  # unchanged
    assert count(metrics(platform), uri="/api/v1/inference/predict", status="404", outcome="CLIENT_ERROR") >= 1


CALLERS = 40


@pytest.mark.slow
def test_db_saturation_exhausts_the_pool_and_times_callers_out(platform):
    study = upload(platform)
    platform.apply("db-saturation", SCENARIOS["db-saturation"].knobs.with_changes({"request_rate": 0}))
    timeouts_before = sample_sum(metrics(platform), catalog.HIKARI_TIMEOUTS.name,
                                 application="study-service")
    with ThreadPoolExecutor(CALLERS) as pool:
        answers = [pool.submit(call, platform, "GET", f"/api/v1/studies/{study}") for _ in range(CALLERS)]
        during = _wait_saturated(platform)
        results = [a.result() for a in answers]
    # ten connections held 1.5 s each; the next callers wait for them, and those still waiting
    # after the pool's 2 s connectionTimeout fail (how many depends on when each arrived)
    assert during["active"] == 10 and during["pending"] >= 5
    assert during["server_active"] == 10  # PostgreSQL sees ten busy backends of the service
    statuses = [r.status_code for r in results]
    assert set(statuses) == {200, 500} and statuses.count(200) >= 10, statuses
    assert all("CannotGetJdbcConnectionException" in r.json()["message"] for r in results if r.status_code == 500)
    after = metrics(platform)
    timeouts = sample_sum(after, catalog.HIKARI_TIMEOUTS.name, application="study-service") - timeouts_before
    assert timeouts == statuses.count(500)


def _wait_saturated(platform):
    """Pool and server figures once all callers are in (polled for up to about 1 s)."""
    for _ in range(20):
        found = metrics(platform)
        figures = {name: sample_sum(found, entry.name, application="study-service")
                   for name, entry in (("active", catalog.HIKARI_ACTIVE), ("pending", catalog.HIKARI_PENDING))}
        if figures["active"] + figures["pending"] == CALLERS:
            break
        time.sleep(0.05)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        figures["server_active"] = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'study-service' "
            "AND state = 'active' AND datname = %s", (platform.config.database.params["dbname"],),
        ).fetchone()[0]
    return figures


def test_the_same_seed_fails_the_same_requests():
    """Which requests an error burst hits is reproducible from --seed (and differs between seeds)."""
    server = TFServing(seed=1, base_latency=0.0, per_instance_latency=0.0)
    http = server.start(("127.0.0.1", 0))
    upstream = f"http://127.0.0.1:{http.server_address[1]}"
    body = json.dumps({"instances": [SAMPLE_IMAGE]}).encode()

    def failed(seed):
        knobs = SCENARIOS["error-burst"].knobs
        gateway = Gateway(studies=None, tfserving_url=upstream, knobs=lambda: knobs, seed=seed)
        replies = [gateway.handle("POST", "/api/v1/inference/predict", body) for _ in range(40)]
        return [i for i, reply in enumerate(replies) if reply.status == 500]

    try:
        first = failed(21)
        assert len(first) == 10 and first == failed(21)
        assert failed(22) != first
    finally:
        http.shutdown()


def test_model_latency_shows_in_tf_servings_runtime_and_the_gateways_buckets(platform):
    labels = dict(uri="/api/v1/inference/predict", status="200")

    def figures():
        found = metrics(platform)
        tf = scrape(f"{platform.urls['tfserving']}/monitoring/prometheus/metrics")
        return (sample_sum(found, HTTP.bucket, le="0.25", **labels), sample_sum(found, HTTP.count, **labels),
                sample_sum(tf, tfserving.RUNTIME_LATENCY.sum))

    fast_before, count_before, runtime_before = figures()
    platform.apply("slow model", Knobs(request_rate=0, model_extra_latency=0.3))
    for _ in range(3):
        assert call(platform, "POST", "/api/v1/inference/predict", {"instances": [SAMPLE_IMAGE]}).status_code == 200
    fast_after, count_after, runtime_after = figures()
    assert count_after - count_before == 3 and fast_after == fast_before  # all three above 0.25 s
    assert runtime_after - runtime_before >= 3 * 0.3e6  # TF Serving's runtime latency, in microseconds
