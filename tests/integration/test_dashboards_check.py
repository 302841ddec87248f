"""`medobs dashboards check` against a real Prometheus scraping small test servers.

The queue server exposes the medobs queue exporter's metrics with realistic labels, except that
the oldest-message age is missing and KEDA's view names the queue ``medical-data`` (a typo)
instead of ``medical_data``; the GPU server is the GPU exporter on a machine without a GPU
(``medobs_gpu_up 0``, no ``medobs_gpu_info``); the Redis server is redis_exporter on an idle
Redis (keyspace hits and misses standing still); the gateway server is micrometer's HikariCP
usage timer without its percentiles (the sum and count alone, as when
``management.metrics.distribution.percentiles`` is not set).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import SummaryMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from dashboards import check
from dashboards.model import load
from medobs.core.catalog import gateway, gpu, queue, redis
from medobs.core.runtime import counter, gauge
from tests.conftest import BUILT_DASHBOARDS, free_port, medobs, require_binary

WORK = ("/", "medical_data", "work")
DLQ = ("/", "medical_data.dlq", "dlq")


class QueueExporterDouble(Collector):
    """What the queue exporter exposes for a healthy medical_data queue and its DLQ."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self):
        elapsed = time.monotonic() - self.started
        for entry, work, dlq in (
            (queue.MESSAGES_READY, 4, 2), (queue.MESSAGES_UNACKED, 1, 0), (queue.MESSAGES, 5, 2),
            (queue.CONSUMERS, 3, 0),
        ):
            family = gauge(entry)
            family.add_metric(WORK, work)
            family.add_metric(DLQ, dlq)
            yield family
        keda = gauge(queue.KEDA_LENGTH)
        keda.add_metric(("/", "medical-data", "work"), 4)
        yield keda
        for entry, per_second in ((queue.PUBLISHED, 5.0), (queue.DELIVERED, 4.5), (queue.ACKNOWLEDGED, 4.0)):
            family = counter(entry)
            family.add_metric(WORK, 100 + per_second * elapsed)
            yield family
        dead = counter(queue.DEAD_LETTERED)
        dead.add_metric(("classic", "rejected", "at_most_once"), 3 + 0.1 * elapsed)
        yield dead
        yield gauge(queue.UP, 1)


class IdleRedisExporterDouble(Collector):
    """What redis_exporter exposes for a Redis nobody looks keys up in: hits and misses stand still."""

    def collect(self):
        yield gauge(redis.UP, 1)
        yield counter(redis.KEYSPACE_HITS, 120)
        yield counter(redis.KEYSPACE_MISSES, 30)


class HikariWithoutPercentiles(Collector):
    """The gateway's HikariCP usage timer with its sum and count growing, but no quantile series."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self):
        elapsed = time.monotonic() - self.started
        usage = SummaryMetricFamily(gateway.HIKARI_USAGE.name, gateway.HIKARI_USAGE.help, labels=["pool"])
        usage.add_metric(["HikariPool-1"], count_value=100 + 20 * elapsed, sum_value=1 + 0.2 * elapsed)
        yield usage


class GpuExporterWithoutGpu(Collector):
    def collect(self):
        yield gauge(gpu.UP, 0)
        errors = counter(gpu.SCRAPE_ERRORS)
        errors.add_metric(("nvml_library_not_found",), 12)
        yield errors


def serve(collector: Collector) -> tuple[int, object]:
    registry = CollectorRegistry()
    registry.register(collector)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return port, server


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    binary = require_binary("prometheus")
    folder: Path = tmp_path_factory.mktemp("prometheus")
    queue_port, queue_server = serve(QueueExporterDouble())
    gpu_port, gpu_server = serve(GpuExporterWithoutGpu())
    redis_port, redis_server = serve(IdleRedisExporterDouble())
    gateway_port, gateway_server = serve(HikariWithoutPercentiles())
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "rabbitmq", "static_configs": [{"targets": [f"127.0.0.1:{queue_port}"]}]},
            {"job_name": "gpu", "static_configs": [{"targets": [f"127.0.0.1:{gpu_port}"]}]},
            {"job_name": "redis", "static_configs": [{"targets": [f"127.0.0.1:{redis_port}"]}]},
            {"job_name": "api-gateway", "static_configs": [{"targets": [f"127.0.0.1:{gateway_port}"]}]},
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=1).status_code == 200, what="Prometheus ready")

        def enough_samples() -> bool:
            query = "count_over_time(medobs_queue_published_messages_total[1m])"
            result = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()["data"]["result"]
            scraped = requests.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=2).json()["data"]["result"]
            return len(scraped) == 4 and bool(result) and float(result[0]["value"][1]) >= 3

        wait_for(enough_samples, what="three scrapes of the test servers")
        yield url
    finally:
        process.terminate()
        process.wait(10)
        for server in (queue_server, gpu_server, redis_server, gateway_server):
            server.shutdown()


def run_check(url: str, *extra: str) -> subprocess.CompletedProcess:
    return medobs("dashboards", "check", "--prometheus", url, "--range", "5m", "--rate-interval", "30s", *extra)


@pytest.fixture(scope="module")
def report(prometheus) -> dict:
    result = run_check(prometheus, "--format", "json")
    assert result.returncode == 1 and result.stdout, result.stderr  # some panels are empty: the check says so
    return json.loads(result.stdout)


def panel(report: dict, dashboard: str, title: str) -> dict:
    matches = [p for p in report["panels"] if p["dashboard"] == dashboard and p["panel"] == title]
    assert len(matches) == 1, f"{dashboard} / {title} not checked exactly once"
    return matches[0]


def test_panels_with_data_are_ok(report):
    for title in ("Ready and unacked", "Consumers", "Publish rate", "Consume rate", "DLQ size", "DLQ growth",
                  "Dead-lettered by reason"):
        checked = panel(report, "Message Queue", title)
        assert checked["status"] == "ok", checked
        assert checked["reasons"] == []


@pytest.mark.parametrize(("title", "kind", "message"), [
    ("Oldest message age", "absent",
     "metric medobs_queue_oldest_message_age_seconds (exposed by medobs-queue) is absent: no series in the last 5m"),
    ("Backlog as KEDA sees it", "labels",
     'labels do not match: no series of medobs_queue_keda_length has queue="medical_data" (queue: medical-data)'),
], ids=["metric-absent", "labels-do-not-match"])
def test_an_empty_panel_says_why(report, title, kind, message):
    checked = panel(report, "Message Queue", title)
    assert checked["status"] == "empty"
    assert checked["reasons"] == [{"kind": kind, "message": message, "query": "A ({{queue}})"}]


def test_a_panel_with_one_empty_query_is_empty_and_names_that_query(report):
    """Query time's mean (from the usage timer's sum and count) has data, its p95 / p99 do not:
    the panel is empty, and the report says which queries have no data and why."""
    checked = panel(report, "Database", "Query time")
    assert checked["status"] == "empty"
    absent = "metric hikaricp_connections_usage_seconds (exposed by hikaricp) is absent: no series in the last 5m"
    assert checked["reasons"] == [
        {"kind": "absent", "message": absent, "query": "A ({{pool}} p95)"},
        {"kind": "absent", "message": absent, "query": "B ({{pool}} p99)"},
    ]


def test_variable_without_values_is_the_reason(report):
    checked = panel(report, "System Overview", "CPU")  # no cAdvisor: no namespace to choose
    assert checked["status"] == "empty"
    kinds = {reason["kind"] for reason in checked["reasons"]}
    assert kinds == {"variable"}
    assert any("variable $namespace has no values" in r["message"] for r in checked["reasons"])


def test_a_panel_of_only_nan_is_empty_and_says_why(report):
    """Hits and misses that stand still make the hit ratio 0/0: series of NaN, which Grafana draws
    as nothing, so the panel is empty although its series exist."""
    checked = panel(report, "Database", "Redis hit ratio")
    assert checked["status"] == "empty"
    assert checked["reasons"] == [{"kind": "expression", "message": check.ONLY_NAN, "query": "A (hit ratio)"}]


def test_gpu_panels_on_a_machine_without_gpu_are_reported_as_such(report):
    for dashboard, title in (("GPU", "GPU utilisation"), ("GPU", "XID errors"), ("GPU", "Pod using each GPU"),
                             ("System Overview", "GPU utilisation")):
        checked = panel(report, dashboard, title)
        assert checked["status"] == "no-gpu", checked
        assert checked["reasons"][0]["message"].startswith("no GPU here: medobs_gpu_info has no series")
    # The exporter's own health still shows: it runs, NVML does not.
    assert panel(report, "GPU", "GPU exporter")["status"] == "ok"


def test_every_panel_is_checked_and_summarised(report):
    expected = sum(1 for board in load([BUILT_DASHBOARDS]) for _ in board.panels())
    assert report["summary"]["panels"] == expected == len(report["panels"])
    counted = {status: sum(1 for p in report["panels"] if p["status"] == status) for status in ("ok", "empty", "no-gpu")}
    assert counted == {k: report["summary"][k] for k in counted}
    assert all(p["reasons"] for p in report["panels"] if p["status"] != "ok")


def test_text_output_has_one_line_per_panel_and_a_summary(prometheus, report):
    result = run_check(prometheus)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == report["summary"]["panels"] + 1
    assert ("EMPTY   Message Queue / Oldest message age: query A ({{queue}}): "
            "metric medobs_queue_oldest_message_age_seconds") in result.stdout
    assert "NO GPU  GPU / GPU utilisation: query A ({{instance}} GPU {{gpu}}): no GPU here" in result.stdout
    assert ("EMPTY   Database / Query time: queries A ({{pool}} p95), B ({{pool}} p99): metric "
            "hikaricp_connections_usage_seconds (exposed by hikaricp) is absent: no series in the last 5m\n") in result.stdout
    assert lines[-1].endswith(f"{report['summary']['no-gpu']} GPU panels without a GPU")


def test_only_gpu_panels_empty_passes(prometheus, tmp_path):
    """On a machine without a GPU, GPU panels alone do not fail the check."""
    board = json.loads((BUILT_DASHBOARDS / "gpu.json").read_text())
    board["panels"] = [p for p in board["panels"] if p["type"] == "row" or p["title"] == "GPU utilisation"]
    (tmp_path / "gpu.json").write_text(json.dumps(board))
    result = run_check(prometheus, str(tmp_path / "gpu.json"))
    assert result.returncode == 0, result.stdout
    assert "0 empty, 1 GPU panels without a GPU" in result.stdout


def test_expect_gpu_makes_gpu_panels_without_gpu_data_empty(prometheus, report):
    """Against a Prometheus that should have GPUs, their absence is a broken panel, not "no GPU"."""
    result = run_check(prometheus, "--format", "json", "--expect-gpu")
    assert result.returncode == 1
    expecting = json.loads(result.stdout)
    assert expecting["summary"]["no-gpu"] == 0
    assert expecting["summary"]["empty"] == report["summary"]["empty"] + report["summary"]["no-gpu"]
    utilisation = panel(expecting, "GPU", "GPU utilisation")
    assert utilisation["status"] == "empty"
    assert utilisation["reasons"] == [{
        "kind": "absent", "query": "A ({{instance}} GPU {{gpu}})",
        "message": "metric medobs_gpu_utilization_ratio (exposed by medobs-gpu) is absent: no series in the last 5m",
    }]
    assert panel(expecting, "GPU", "GPU exporter")["status"] == "ok"


def test_expect_gpu_fails_a_board_of_only_gpu_panels(prometheus, tmp_path):
    board = json.loads((BUILT_DASHBOARDS / "gpu.json").read_text())
    board["panels"] = [p for p in board["panels"] if p["type"] == "row" or p["title"] == "GPU utilisation"]
    (tmp_path / "gpu.json").write_text(json.dumps(board))
    result = run_check(prometheus, "--expect-gpu", str(tmp_path / "gpu.json"))
    assert result.returncode == 1, result.stdout
    assert "EMPTY   GPU / GPU utilisation: query A ({{instance}} GPU {{gpu}}): metric medobs_gpu_utilization_ratio" \
        in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("1 empty, 0 GPU panels without a GPU")


def test_unreachable_prometheus_is_one_line():
    result = run_check(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("medobs dashboards: error: cannot reach Prometheus at http://127.0.0.1:")


def test_bad_range_is_one_line(prometheus):
    result = medobs("dashboards", "check", "--prometheus", prometheus, "--range", "an hour")
    assert result.returncode == 2
    assert result.stderr.strip() == "medobs dashboards: error: --range 'an hour' is not a duration like 30s, 5m or 1h"


def test_series_that_exist_but_a_join_drops_are_explained(prometheus):
    window = check.window_of("5m", "30s")
    expr = 'medobs_queue_consumers{role="work"} and on (queue) medobs_queue_messages{role="dlq"}'
    assert check.diagnose(expr, check.Prometheus(prometheus, 10), window) == [check.Reason(
        "expression", "its series exist, but the expression returns nothing (a join, filter or range drops them)",
    )]


def test_gpu_panels_without_any_gpu_exporter_are_reported_as_no_gpu(prometheus, tmp_path):
    """No GPU exporter scraped at all (its job variable finds nothing): still "no GPU", not a failure."""
    board = json.loads((BUILT_DASHBOARDS / "gpu.json").read_text())
    job = next(v for v in board["templating"]["list"] if v["name"] == "job")
    job["query"] = 'label_values(up{job=~"gpu-exporter-not-deployed"}, job)'
    (tmp_path / "gpu.json").write_text(json.dumps(board))
    result = run_check(prometheus, "--format", "json", str(tmp_path / "gpu.json"))
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert {p["status"] for p in report["panels"]} == {"no-gpu"}
    assert report["summary"]["no-gpu"] == len(report["panels"]) == 9


def test_a_cluster_variable_without_values_selects_all_as_grafana_does(prometheus):
    """This Prometheus's series carry no `cluster` label: the variable finds no value, Grafana
    selects "All", and its allValue `.*` keeps every series; the job variable's "All" (`.+`)
    would not match an absent label, so a job variable without values stays a reason."""
    board = next(b for b in load([BUILT_DASHBOARDS]) if b.uid == "medobs-message-queue")
    values, problems = check.resolve_variables(board, check.Prometheus(prometheus, 10), check.window_of("5m", "30s"))
    assert values["cluster"] == ".*" and "cluster" not in problems
    assert "rabbitmq" in values["job"]
    variables = [dict(v, query='label_values(up{job="not-deployed"}, job)') if v["name"] == "job" else v
                 for v in board.variables]
    unscraped = dataclasses.replace(board, model={**board.model, "templating": {"list": variables}})
    _values, problems = check.resolve_variables(unscraped, check.Prometheus(prometheus, 10), check.window_of("5m", "30s"))
    assert problems["job"].startswith("variable $job has no values")
