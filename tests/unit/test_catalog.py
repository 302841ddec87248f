import re

import pytest

from medobs.core import catalog
from medobs.core.catalog import ALL, Metric, lookup
from medobs.core.promql import metric_names

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
OWN_SOURCES = {"medobs-gpu", "medobs-queue", "medobs-inference", "medobs-backup"}
RECORDING_RULE = re.compile(r"^[a-z_]+:[a-z_]+:[a-z0-9_]+$")
UNIT_SUFFIX = {
    "seconds": "_seconds", "bytes": "_bytes", "ratio": "_ratio", "celsius": "_celsius",
    "watts": "_watts", "joules": "_joules", "hertz": "_hertz",
}


def own_metrics() -> list[Metric]:
    return [m for m in ALL.values() if m.source in OWN_SOURCES]


def test_catalog_covers_every_domain():
    sources = {m.source for m in ALL.values()}
    for expected in ("micrometer", "hikaricp", "tfserving", "postgres-exporter", "redis-exporter",
                     "cadvisor", "kube-state-metrics", "medobs-gpu", "medobs-queue", "medobs-inference"):
        assert expected in sources


@pytest.mark.parametrize("entry", list(ALL.values()), ids=lambda m: m.name)
def test_entry_is_well_formed(entry: Metric):
    assert NAME.match(entry.name)
    assert entry.help.strip()
    assert len(set(entry.labels)) == len(entry.labels)
    assert "le" not in entry.labels and "quantile" not in entry.labels


@pytest.mark.parametrize("entry", own_metrics(), ids=lambda m: m.name)
def test_own_metrics_follow_prometheus_naming(entry: Metric):
    assert entry.name.startswith("medobs_")
    assert entry.name.endswith("_total") == (entry.type == "counter")
    for unit, suffix in UNIT_SUFFIX.items():
        if entry.unit == unit:
            stem = entry.name.removesuffix("_total").removesuffix("_per_second")
            assert stem.endswith(suffix), f"{entry.name} is in {unit} but not named *{suffix}"


def test_slo_recording_rules_follow_the_level_metric_operations_convention():
    recorded = [m for m in ALL.values() if m.source == "medobs-slo"]
    assert recorded
    for entry in recorded:
        # sloth_slo_info keeps Sloth's name: Sloth's Grafana dashboards read it.
        assert RECORDING_RULE.match(entry.name) or entry.name == "sloth_slo_info", entry.name


def test_every_exporter_declares_its_health_metrics():
    for prefix in ("medobs_gpu", "medobs_queue", "medobs_inference"):
        for suffix in ("_up", "_scrape_duration_seconds", "_scrape_errors_total", "_last_success_timestamp_seconds"):
            assert prefix + suffix in ALL


def test_series_names_and_lookup():
    histogram = catalog.gateway.HTTP_SERVER_REQUESTS
    assert histogram.bucket == "http_server_requests_seconds_bucket"
    assert lookup("http_server_requests_seconds_count") is histogram
    assert lookup("hikaricp_connections_acquire_seconds_sum") is catalog.gateway.HIKARI_ACQUIRE
    assert lookup("no_such_metric") is None
    with pytest.raises(AttributeError):
        catalog.gateway.HIKARI_ACTIVE.bucket


def test_duplicate_declaration_is_refused():
    with pytest.raises(ValueError, match="twice"):
        catalog.metric("up", "gauge", "again", source="prometheus")


def test_metric_names_of_promql():
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(http_server_requests_seconds_bucket{job=~"$job",'
        ' uri!~"/actuator.*"}[5m]))) > on (pool) group_left hikaricp_connections_max offset 5m'
        ' or sum(rate(:tensorflow:serving:request_count{status!="OK"}[5m])) by (model_name)'
        ' / count without (x) (label_replace(up, "a", "$1", "b", "(.*)")) and absent(redis_up)'
    )
    assert metric_names(expr) == {
        "http_server_requests_seconds_bucket", "hikaricp_connections_max",
        ":tensorflow:serving:request_count", "up", "redis_up",
    }
