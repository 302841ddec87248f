"""The sidecar's exposition under real tools: clean for promtool, the bridged histograms'
quantiles in a real Prometheus, and the README's PromQL."""

import json
import subprocess

import pytest
import requests
from promql_parser import Call, NumberLiteral

from exporters.inference.collector import InferenceExporter
from medobs.core import promql
from medobs.core.catalog import inference as catalog
from medobs.core.catalog import lookup
from medobs.core.runtime import start_server
from tests.conftest import REPO, promql_blocks, require_binary
from tests.inference_support import (
    MODEL,
    simulated_tfserving,
    wait_until,
)
from tests.unit.test_inference_exporter import prometheus  # noqa: F401 (a fixture)


@pytest.fixture
def sim():
    with simulated_tfserving() as running:
        yield running


def predict(url: str, instances=1) -> requests.Response:
    return requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": [[0.5]] * instances}, timeout=5)


def test_promtool_finds_nothing_to_say_about_the_exposition(sim):
    promtool = require_binary("promtool")
    server, url = sim
    for instances in (1, 3):
        predict(url, instances)
    server.faults.error_ratio = 1.0
    predict(url)
    http = start_server(InferenceExporter(url, [MODEL]), ("127.0.0.1", 0))
    try:
        text = requests.get(f"http://127.0.0.1:{http.server_address[1]}/metrics", timeout=5).text
    finally:
        http.shutdown()
        http.server_close()
    assert catalog.SERVER_RUNTIME_DURATION.bucket in text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


# -- against a real Prometheus ------------------------------------------------------------------


@pytest.mark.slow
def test_bridged_histograms_give_prometheus_the_same_quantiles_as_the_source(sim, prometheus):
    configure, query = prometheus
    server, url = sim
    sent = 0
    for extra in (0.0, 0.002, 0.01, 0.03, 0.08):  # spread latency over several of TF's buckets
        server.faults.extra_latency = extra
        for _ in range(4):
            assert predict(url).status_code == 200
            sent += 1
    http = start_server(InferenceExporter(url, [MODEL]), ("127.0.0.1", 0))
    try:
        configure({
            "ml-inference": f"{url}/monitoring/prometheus/metrics",
            "inference-exporter": f"http://127.0.0.1:{http.server_address[1]}/metrics",
        })
        source = ":tensorflow:serving:request_latency"
        target = catalog.SERVER_REQUEST_DURATION.name
        # both scraped after the traffic: the same counts on both sides
        wait_until(lambda: [float(r["value"][1]) for r in query(f"sum({source}_count) + sum({target}_count)")] == [2 * sent])
        for q in (0.5, 0.9, 0.95, 0.99):
            (tf,) = query(f"histogram_quantile({q}, sum by (le) ({source}_bucket))")
            (ours,) = query(f"histogram_quantile({q}, sum by (le) ({target}_bucket))")
            tf_seconds, our_seconds = float(tf["value"][1]) / 1e6, float(ours["value"][1])
            assert our_seconds == pytest.approx(tf_seconds, rel=1e-4), q
    finally:
        http.shutdown()
        http.server_close()


def quantiles_of(expressions: list[str], series: str) -> set[float]:
    """The q of every ``histogram_quantile(q, ...)`` over ``series`` in the expressions."""
    calls = [node for expr in expressions for node, _ in promql.walk(promql.parse(expr))
             if isinstance(node, Call) and node.func.name == "histogram_quantile"]
    return {call.args[0].val for call in calls
            if isinstance(call.args[0], NumberLiteral) and series in map(promql.metric_name, promql.selectors(call))}


def test_the_documented_promql_parses_and_uses_only_catalogued_metrics(tmp_path):
    promtool = require_binary("promtool")
    block = promql_blocks((REPO / "docs" / "exporters" / "inference.md").read_text())[0]
    expressions = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(expressions) >= 9
    for expr in expressions:
        assert all(lookup(name) for name in promql.metric_names(expr)), expr
    # p50, p95 and p99 of the inference time, as the issue asks
    assert {0.5, 0.95, 0.99} <= quantiles_of(expressions, catalog.REQUEST_DURATION.bucket)
    rules = {"groups": [{"name": "readme", "rules": [
        {"record": f"readme:inference:expr{i}", "expr": expr} for i, expr in enumerate(expressions)
    ]}]}
    (tmp_path / "rules.yml").write_text(json.dumps(rules))
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
