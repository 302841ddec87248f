"""The custom postgres_exporter queries run on the real exporter against the real PostgreSQL."""

import subprocess
import time

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from medobs.core.catalog import postgres
from tests.conftest import REPO, free_port, require_binary


def test_queries_yield_the_catalog_metrics():
    port = free_port()
    exporter = subprocess.Popen(
        [
            require_binary("prometheus-postgres-exporter"), f"--web.listen-address=127.0.0.1:{port}",
            f"--extend.query-path={REPO / 'build' / 'postgres-exporter' / 'queries.yaml'}",
        ],
        env={"DATA_SOURCE_NAME": "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "postgres_exporter did not start"
                time.sleep(0.2)
    finally:
        exporter.terminate()
        _, errors = exporter.communicate(timeout=10)
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[postgres.REPLICATION_LAG.name].value == 0  # a primary has no lag
    assert samples[postgres.IS_REPLICA.name].value == 0
    ages = [s for f in text_string_to_metric_families(text) if f.name == postgres.XID_AGE.name for s in f.samples]
    assert {s.labels["datname"] for s in ages} >= {"postgres"}
    assert all(0 <= s.value < 2**31 for s in ages)
    assert "error" not in errors.lower(), errors


def test_queries_file_is_valid_yaml_with_descriptions():
    queries = yaml.safe_load((REPO / "build" / "postgres-exporter" / "queries.yaml").read_text())
    for namespace, query in queries.items():
        assert query["query"].upper().startswith("SELECT")
        for metric in query["metrics"]:
            ((column, spec),) = metric.items()
            assert spec["usage"] in {"LABEL", "GAUGE", "COUNTER"} and spec["description"]
