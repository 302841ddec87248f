"""The built dashboards: what the issue asks on each board, metrics only from the catalog,
stable uids, and provisioning that docker-compose's Grafana loads without manual steps
(checked structurally: no Docker here)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
import yaml
from promql_parser import BinaryExpr, VectorSelector

from dashboards import generate, panels, provisioning, variables
from dashboards import slo as slo_board
from dashboards.model import Board, load, queries, variable_query
from medobs.core import catalog, promql, scrape_jobs, site
from medobs.core.catalog import gpu, inference, queue, slo
from medobs.core.links import DASHBOARD_UIDS
from tests.conftest import BUILT_DASHBOARDS, REPO

BOARDS = {board.path.stem: board for board in load([BUILT_DASHBOARDS])}
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
BUILT_RULES = REPO / "build" / "prometheus" / "rules"
GRAFANA_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+|\[\[\w+\]\]")
IN_SCOPE = 'cluster=~"$cluster", job=~"$job", instance=~"$instance"'


def panel(key: str, title: str) -> dict[str, Any]:
    matches = [p for p in BOARDS[key].panels() if p["title"] == title]
    assert len(matches) == 1, f"{key} has {len(matches)} panels titled {title!r}"
    return matches[0]


def exprs(key: str, title: str) -> list[str]:
    return [q["expr"] for q in queries(panel(key, title))]


def unit(key: str, title: str) -> str:
    return panel(key, title)["fieldConfig"]["defaults"]["unit"]


def every_query(board: Board) -> list[str]:
    """Each panel query, and the selector of each label_values() variable query."""
    texts = [q["expr"] for p in board.panels() for q in queries(p)]
    for variable in board.variables:
        if variable["type"] == "query":
            selector, _label = variables.label_values(variable_query(variable))
            texts.append(selector)
    return texts


def test_one_file_per_dashboard_with_the_stable_uid():
    assert set(BOARDS) == set(DASHBOARD_UIDS) == set(generate.BOARDS)
    for key, board in BOARDS.items():
        assert board.uid == DASHBOARD_UIDS[key]
        assert board.model["editable"] is False
        assert panels.MANAGED_TAG in board.model["tags"]


@pytest.mark.parametrize("key", sorted(BOARDS))
def test_every_query_uses_only_catalogued_metrics(key):
    for text in every_query(BOARDS[key]):
        without_variables = GRAFANA_VARIABLE.sub("5m", text)
        unknown = {name for name in promql.metric_names(without_variables) if catalog.lookup(name) is None}
        assert not unknown, f"{key}: {text!r} uses metrics the catalog does not know: {sorted(unknown)}"


def test_the_catalog_check_would_catch_an_unknown_metric():
    text = 'sum(rate(medobs_queue_publishd_total{job=~"$job"}[$__rate_interval]))'
    names = promql.metric_names(GRAFANA_VARIABLE.sub("5m", text))
    assert names == {"medobs_queue_publishd_total"} and catalog.lookup("medobs_queue_publishd_total") is None


def test_every_panel_and_target_uses_the_datasource_variable_of_the_provisioned_datasource():
    for board in BOARDS.values():
        datasource = next(v for v in board.variables if v["name"] == "datasource")
        assert datasource["current"]["value"] == site.DEFAULT.grafana.datasource_uid
        for p in board.panels():
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all(t["datasource"] == p["datasource"] for t in p["targets"])
        rows = [p for p in board.model["panels"] if p["type"] == "row"]
        assert rows and all("datasource" not in row for row in rows)  # not `null`: Grafana's schema rejects it


def test_every_board_filters_on_a_cluster_variable_that_keeps_unlabelled_series():
    for board in BOARDS.values():
        cluster = next(v for v in board.variables if v["name"] == "cluster")
        assert cluster["type"] == "query" and variable_query(cluster) == "label_values(up, cluster)"
        assert cluster["includeAll"] is True and re.fullmatch(cluster["allValue"], "")  # "All" keeps series without it
        assert cluster["current"]["value"] == site.DEFAULT.cluster
        assert cluster["datasource"] == panels.DATASOURCE
        for text in every_query(board):
            if text == "up":  # the cluster variable's own query
                continue
            for node in promql.selectors(variables.parse_template(text)):
                assert ("cluster", "$cluster") in {(m.name, m.value) for m in node.matchers.matchers}, text


def test_the_site_sets_the_datasource_the_cluster_and_the_folder():
    other = dataclasses.replace(
        site.DEFAULT, cluster="eu-west-prod",
        grafana=dataclasses.replace(site.DEFAULT.grafana, datasource_uid="prometheus", folder="Imaging"),
    )
    with site.active(other):
        files = generate.build_files()
    for key in generate.BOARDS:
        model = json.loads(files[f"{generate.DASHBOARDS_DIR}/{key}.json"])
        current = {v["name"]: v["current"]["value"] for v in model["templating"]["list"]}
        assert current["datasource"] == "prometheus" and current["cluster"] == "eu-west-prod"
    (datasource,) = yaml.safe_load(files[f"{generate.PROVISIONING_DIR}/datasources/medobs.yml"])["datasources"]
    (provider,) = yaml.safe_load(files[f"{generate.PROVISIONING_DIR}/dashboards/medobs.yml"])["providers"]
    assert datasource["uid"] == "prometheus" and provider["folder"] == "Imaging"


def test_system_overview_has_the_seed_panels_from_the_right_sources():
    key = "system-overview"
    assert unit(key, "Request rate") == "reqps"
    assert [q["legendFormat"] for q in queries(panel(key, "Response time"))] == ["p50", "p95", "p99"]
    assert [q["legendFormat"] for q in queries(panel(key, "Error rate"))] == ["4xx", "5xx"]
    assert all(e.startswith("(sum(rate(http_server_requests_seconds_count{") for e in exprs(key, "Error rate"))
    assert all(inference.REQUEST_DURATION.bucket in e for e in exprs(key, "Inference time"))
    assert exprs(key, "Throughput") == [
        f'sum by (model) (rate({inference.IMAGES.name}{{{IN_SCOPE}}}[$__rate_interval]))'
    ]
    assert unit(key, "Throughput") == "suffix:img/s"
    assert all(inference.BATCH_SIZE.name in e for e in exprs(key, "Batch size"))
    assert exprs(key, "GPU utilisation") == [f'{gpu.UTILIZATION.name}{{{IN_SCOPE}}}']
    for title, metric in (("CPU", "container_cpu_usage_seconds_total"), ("Memory", "container_memory_working_set_bytes"),
                          ("Network I/O", "container_network_receive_bytes_total"),
                          ("Disk I/O", "container_fs_reads_bytes_total")):
        assert exprs(key, title)[0].startswith("sum by (pod) (") and metric in exprs(key, title)[0]
        assert 'namespace=~"$namespace", pod=~"$pod"' in exprs(key, title)[0]


def test_database_has_pool_queries_replication_and_redis():
    key = "database"
    legends = [q["legendFormat"] for q in queries(panel(key, "Pool connections"))]
    assert legends == ["{{pool}} active", "{{pool}} idle", "{{pool}} pending", "{{pool}} max"]
    assert [q["legendFormat"] for q in queries(panel(key, "Query time"))] == [
        "{{pool}} p95", "{{pool}} p99", "{{pool}} mean"]
    for title in ("Replication lag (time)", "Replication lag (bytes)", "Transaction rate", "Connections by state",
                  "Deadlocks", "Cache hit ratio", "Redis memory", "Redis hit ratio", "Redis persistence"):
        assert queries(panel(key, title)), title
    assert unit(key, "Replication lag (time)") == "s" and unit(key, "Replication lag (bytes)") == "bytes"
    # the postgresql job has a target per server (primary and replica): these panels keep them apart
    for title in ("Transaction rate", "Connections by state"):
        assert all(q["expr"].startswith(("sum by (instance, ", "max by (instance) (")) for q in queries(panel(key, title)))


def test_message_queue_draws_the_keda_threshold_on_what_keda_sees():
    backlog = panel("message-queue", "Backlog as KEDA sees it")
    (expr,) = exprs("message-queue", "Backlog as KEDA sees it")
    assert queue.KEDA_LENGTH.name in expr and 'queue="medical_data"' in expr
    defaults = backlog["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] == "line"
    assert [step["value"] for step in defaults["thresholds"]["steps"]] == [None, 10]
    for title in ("Ready and unacked", "Publish rate", "Consume rate", "DLQ size", "DLQ growth", "Oldest message age",
                  "Consumers"):
        assert queries(panel("message-queue", title)), title
    assert all('role="dlq"' in e for e in exprs("message-queue", "DLQ size") + exprs("message-queue", "DLQ growth"))


def test_gpu_board_names_the_pod_of_each_gpu_through_the_pod_info_join():
    for title in ("Pod using each GPU", "GPU utilisation by pod"):
        (expr,) = exprs("gpu", title)
        assert expr.startswith(gpu.POD_INFO.name) and "* on (instance, uuid) group_left (gpu" in expr
    assert queries(panel("gpu", "Pod using each GPU"))[0]["instant"] is True
    for title, metric in (("GPU utilisation", gpu.UTILIZATION), ("Temperature", gpu.TEMPERATURE),
                          ("Power", gpu.POWER), ("Throttle reasons", gpu.CLOCK_EVENT), ("XID errors", gpu.XID_ERRORS),
                          ("GPU memory", gpu.MEMORY_USED)):
        assert metric.name in exprs("gpu", title)[0], title


def test_slo_board_shows_each_slo_from_the_recording_rules():
    board = BOARDS["slo"]
    rows = [p for p in board.model["panels"] if p["type"] == "row"]
    assert [r.get("repeat") for r in rows] == ["slo"]
    burn = exprs("slo", "Burn rate per window")
    assert len(burn) == len(slo.ALERT_WINDOWS)
    recorded = {rule["record"] for path in BUILT_RULES.glob("slo-*.yml")
                for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "record" in rule}
    for window, expr in zip(slo.ALERT_WINDOWS, burn):
        # the burn rate: the window's error ratio divided by the error budget, SLO by SLO
        tree = variables.parse_template(expr)
        assert isinstance(tree, BinaryExpr) and str(tree.op) == "/", expr
        assert str(tree.modifier.matching) == f"on ({slo_board.SLO_ID})", expr
        assert isinstance(tree.lhs, VectorSelector) and isinstance(tree.rhs, VectorSelector), expr
        assert (tree.lhs.name, tree.rhs.name) == (slo.ERROR_RATIO[window].name, slo.ERROR_BUDGET.name), expr
        assert {tree.lhs.name, tree.rhs.name} <= recorded, expr
    (sli, objective) = exprs("slo", "SLI against objective")
    assert all(slo.ERROR_RATIO[p].name in sli for p in slo.PERIODS) and objective.startswith(slo.OBJECTIVE.name)
    assert exprs("slo", "Error budget remaining")[0].startswith(slo.BUDGET_REMAINING.name)
    assert all('ALERTS{cluster=~"$cluster", service=~"$service", slo=~"$slo", alertstate="firing"' in e
               for e in exprs("slo", "Alert state"))


def test_job_variables_offer_the_scrape_jobs_of_medobs_scrape():
    for board in BOARDS.values():
        for variable in board.variables:
            for jobs in re.findall(r'job=~"([\w|-]+)"', variable_query(variable)):
                assert set(jobs.split("|")) <= set(scrape_jobs.JOB_NAMES), jobs


# --- provisioning, as docker-compose's Grafana reads it ---------------------------------------


def grafana_mounts() -> dict[str, str]:
    """Container path -> host path of the Grafana service's bind mounts."""
    mounts = {}
    for volume in COMPOSE["services"]["grafana"]["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def provisioned(kind: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "build" / generate.PROVISIONING_DIR / kind / "medobs.yml").read_text())


def test_compose_mounts_the_provisioning_folders_grafana_reads():
    mounts = grafana_mounts()
    for kind in ("datasources", "dashboards"):
        assert mounts[f"/etc/grafana/provisioning/{kind}"] == f"./build/{generate.PROVISIONING_DIR}/{kind}"


def test_the_dashboard_provider_path_is_where_compose_mounts_the_dashboards():
    (provider,) = provisioned("dashboards")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == provisioning.CONTAINER_DASHBOARDS_DIR
    assert grafana_mounts()[provider["options"]["path"]] == f"./build/{generate.DASHBOARDS_DIR}"
    assert provider["allowUiUpdates"] is False and provider["folderUid"] == provisioning.FOLDER_UID


def test_the_provisioned_datasource_is_the_one_the_dashboards_select():
    (datasource,) = provisioned("datasources")["datasources"]
    assert datasource["uid"] == site.DEFAULT.grafana.datasource_uid and datasource["type"] == "prometheus"
    prometheus = COMPOSE["services"]["prometheus"]
    host, port = datasource["url"].removeprefix("http://").split(":")
    assert host == "prometheus" and f"{port}:{port}" in prometheus["ports"]
    assert datasource["jsonData"]["timeInterval"] == scrape_jobs.SCRAPE_INTERVAL
    for board in BOARDS.values():
        assert next(v for v in board.variables if v["name"] == "datasource")["current"]["value"] == datasource["uid"]


def test_docs_list_every_panel():
    docs = (REPO / "docs" / "dashboards.md").read_text()
    for board in BOARDS.values():
        assert f"### {board.title} (`{board.uid}`" in docs
        for p in board.panels():
            assert f"| {p['title']} | `{p['fieldConfig']['defaults']['unit']}` |" in docs, (board.title, p["title"])
