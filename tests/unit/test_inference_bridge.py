"""The bridge: TF Serving's exposition becomes catalog families in seconds, bounds kept exactly."""

import json

import pytest

from exporters.inference.bridge import BRIDGES, bridge_families, scaled_bound
from medobs.core.catalog import inference as catalog
from medobs.core.catalog import tfserving
from medobs.simulator.tfserving import TFServing
from tests.inference_support import MODEL, Exposition


def bridged(text: str) -> Exposition:
    return Exposition(bridge_families(text))


def predicted(server: TFServing, count: int = 1) -> None:
    for _ in range(count):
        server.predict(MODEL, None, json.dumps({"instances": [[1.0]]}).encode())


def test_every_bridge_keeps_the_label_count_and_turns_microseconds_into_seconds():
    for bridge in BRIDGES:
        assert len(bridge.source.labels) == len(bridge.target.labels), bridge.target.name
        assert bridge.source.type == bridge.target.type
        if bridge.source.unit == "microseconds":
            assert bridge.target.unit == "seconds"


@pytest.mark.parametrize(
    "le,seconds",
    [("10", "1e-05"), ("32.4", "3.24e-05"), ("121440", "0.12144"), ("218591", "0.218591"),
     ("1.33826e+07", "13.3826"), ("+Inf", "+Inf")],
)
def test_bounds_are_scaled_exactly(le, seconds):
    assert scaled_bound(le, -6) == seconds


def test_latency_histograms_keep_tf_servings_bounds_in_seconds():
    server = TFServing(base_latency=0.001, per_instance_latency=0.0)
    server.faults.extra_latency = 0.15
    predicted(server)
    out = bridged(server.metrics_text())
    buckets = out.buckets(catalog.SERVER_RUNTIME_DURATION.name, model=MODEL, api="Predict", runtime="TF1")
    assert len(buckets) == len(tfserving.LATENCY_BUCKETS_US) + 1
    assert [float(le) for le in buckets if le != "+Inf"] == pytest.approx(
        [bound / 1e6 for bound in tfserving.LATENCY_BUCKETS_US], rel=1e-5
    )
    # about 0.151 s: above 10*1.8^16 us = 0.12144 s, below 10*1.8^17 us = 0.218591 s
    assert buckets["0.12144"] == 0 and buckets["0.218591"] == 1
    total = out.value(catalog.SERVER_RUNTIME_DURATION.sum, model=MODEL)
    assert total == pytest.approx(0.151, abs=0.01)
    assert out.value(catalog.SERVER_REQUEST_DURATION.count, model=MODEL, api="predict", entrypoint="REST") == 1


def test_request_counts_by_status_and_batching_families():
    server = TFServing(base_latency=0.0, per_instance_latency=0.0)
    predicted(server, 3)
    server.faults.error_ratio = 1.0
    predicted(server, 2)
    out = bridged(server.metrics_text())
    assert out.value(catalog.SERVER_REQUESTS.name, model=MODEL, status="OK") == 3
    assert out.value(catalog.SERVER_REQUESTS.name, model=MODEL, status="INTERNAL") == 2
    assert out.value(catalog.SERVER_BATCHED_RUNS.name) == 3
    assert out.value(catalog.SERVER_BATCH_QUEUING_DURATION.count, thread_pool_name="model_batch_threads") == 3
    assert "# HELP " + catalog.SERVER_REQUESTS.name in out.text


def test_batching_families_only_when_tf_serving_has_them():
    server = TFServing(base_latency=0.0, per_instance_latency=0.0, batching=False)
    predicted(server)
    names = {family.name for family in bridge_families(server.metrics_text())}
    assert catalog.SERVER_BATCH_QUEUING_DURATION.name not in names
    assert catalog.SERVER_REQUEST_DURATION.name in names


def test_before_the_first_request_the_families_are_there_without_samples():
    families = {f.name: f for f in bridge_families(TFServing().metrics_text())}
    assert families[catalog.SERVER_REQUEST_DURATION.name].samples == []


def test_labels_the_catalog_does_not_declare_are_summed_away():
    # A later TF Serving adds a status label to request_latency.
    text = "\n".join([
        "# TYPE :tensorflow:serving:request_latency histogram",
        *[f':tensorflow:serving:request_latency_bucket{{model_name="m",API="predict",entrypoint="REST",'
          f'status="{status}",le="{le}"}} {count}'
          for status, counts in (("OK", (1, 3, 3)), ("INTERNAL", (0, 1, 2))) for le, count in zip(("10", "18", "+Inf"), counts)],
        ':tensorflow:serving:request_latency_sum{model_name="m",API="predict",entrypoint="REST",status="OK"} 40',
        ':tensorflow:serving:request_latency_sum{model_name="m",API="predict",entrypoint="REST",status="INTERNAL"} 60',
        ':tensorflow:serving:request_latency_count{model_name="m",API="predict",entrypoint="REST",status="OK"} 3',
        ':tensorflow:serving:request_latency_count{model_name="m",API="predict",entrypoint="REST",status="INTERNAL"} 2',
    ]) + "\n"
    out = bridged(text)
    name = catalog.SERVER_REQUEST_DURATION.name
    assert out.buckets(name) == {"1e-05": 1, "1.8e-05": 4, "+Inf": 5}
    assert out.value(f"{name}_sum") == pytest.approx(100e-6)
    assert out.label_sets(f"{name}_count") == [{"model": "m", "api": "predict", "entrypoint": "REST"}]


@pytest.mark.parametrize(
    "text,message",
    [
        ("<html><body>502 Bad Gateway</body></html>\n", None),
        ("# TYPE :tensorflow:serving:request_count counter\n:tensorflow:serving:request_count{model_name=\"m\" 1\n", None),
        ("# TYPE go_goroutines gauge\ngo_goroutines 8\n", "none of TF Serving's"),
        ("# TYPE :tensorflow:serving:request_latency histogram\n"
         ':tensorflow:serving:request_latency_bucket{model_name="m",API="p",entrypoint="REST",le="10"} 1\n', r"no \+Inf bucket"),
        ("# TYPE :tensorflow:serving:request_latency histogram\n"
         ':tensorflow:serving:request_latency_bucket{model_name="m",API="p",entrypoint="REST",le="ten"} 1\n', "not a number"),
    ],
    ids=["html", "broken-line", "other-metrics", "no-inf", "bad-bound"],
)
def test_what_is_not_tf_servings_exposition_is_a_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        bridge_families(text)
