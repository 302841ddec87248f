"""`medobs dashboards lint`: clean on every built dashboard, and each rule catches a dashboard
that breaks it (exactly that rule, one line)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from dashboards import lint
from dashboards.model import load
from tests.conftest import BUILT_DASHBOARDS, medobs

Model = dict[str, Any]


def built(name: str) -> Model:
    return json.loads((BUILT_DASHBOARDS / f"{name}.json").read_text())


def variable(model: Model, name: str) -> Model:
    return next(v for v in model["templating"]["list"] if v["name"] == name)


def panel(model: Model, title: str) -> Model:
    return next(p for p in model["panels"] if p.get("title") == title)


def set_expr(title: str, expr: str, board: str = "message-queue") -> Callable[[Model], None]:
    def mutate(model: Model) -> None:
        panel(model, title)["targets"][0]["expr"] = expr
    mutate.board = board  # type: ignore[attr-defined]
    return mutate


FILTER = 'cluster=~"$cluster", job=~"$job", instance=~"$instance"'


def _drop_datasource_variable(m: Model) -> None:
    m["templating"]["list"] = [v for v in m["templating"]["list"] if v["name"] != "datasource"]


BROKEN: dict[str, tuple[str, Callable[[Model], None]]] = {
    "no-datasource-variable": ("template-datasource-rule", _drop_datasource_variable),
    "datasource-label": ("template-datasource-rule", lambda m: variable(m, "datasource").update(label="DS")),
    "instance-all-value": ("template-job-instance-rule", lambda m: variable(m, "instance").update(allValue=".*")),
    "job-single-select": ("template-job-instance-rule", lambda m: variable(m, "job").update(multi=False)),
    "no-cluster-variable": (
        "template-cluster-rule",
        lambda m: m["templating"].update(list=[v for v in m["templating"]["list"] if v["name"] != "cluster"]),
    ),
    "cluster-all-skips-unlabelled": ("template-cluster-rule", lambda m: variable(m, "cluster").update(allValue=".+")),
    "job-refresh-on-load": ("template-on-time-change-reload-rule", lambda m: variable(m, "job").update(refresh=1)),
    "job-query-broken": (
        "template-label-promql-rule", lambda m: variable(m, "job").update(query='label_values(up{job=~"rabbitmq", job)'),
    ),
    "editable": ("uneditable-dashboard-rule", lambda m: m.update(editable=True)),
    "no-uid": ("dashboard-uid-rule", lambda m: m.update(uid="")),
    "repeated-panel-id": ("dashboard-uid-rule", lambda m: m["panels"][2].update(id=m["panels"][1]["id"])),
    "untagged": ("dashboard-tags-rule", lambda m: m.update(tags=["rabbitmq"])),
    "no-description": ("panel-title-description-rule", lambda m: panel(m, "Consumers").update(description="")),
    "no-unit": ("panel-units-rule", lambda m: panel(m, "Consumers")["fieldConfig"]["defaults"].update(unit="")),
    "bad-unit": ("panel-units-rule", lambda m: panel(m, "Consumers")["fieldConfig"]["defaults"].update(unit="msgs")),
    "fixed-datasource": (
        "panel-datasource-rule", lambda m: panel(m, "Consumers").update(datasource={"uid": "medobs-prometheus"}),
    ),
    "no-targets": ("panel-no-targets-rule", lambda m: panel(m, "Consumers").update(targets=[])),
    "invalid-promql": ("target-promql-rule", set_expr("Consumers", f"sum(medobs_queue_consumers{{{FILTER}}}")),
    "fixed-rate-range": (
        "target-rate-interval-rule",
        set_expr("Publish rate", f"sum(rate(medobs_queue_published_messages_total{{{FILTER}}}[5m]))"),
    ),
    "fixed-increase-range": (
        "target-rate-interval-rule",
        set_expr("Publish rate", f"sum(increase(medobs_queue_published_messages_total{{{FILTER}}}[1h]))"),
    ),
    "no-instance-matcher": (
        "target-job-instance-rule",
        set_expr("Consumers", 'sum by (queue) (medobs_queue_consumers{cluster=~"$cluster", job=~"$job"})'),
    ),
    "no-cluster-matcher": (
        "target-cluster-rule",
        set_expr("Consumers", 'sum by (queue) (medobs_queue_consumers{job=~"$job", instance=~"$instance"})'),
    ),
    "counter-without-rate": (
        "target-counter-agg-rule", set_expr("Publish rate", f"sum(medobs_queue_published_messages_total{{{FILTER}}})"),
    ),
    "counter-without-total-suffix": (
        "target-counter-agg-rule",
        set_expr("Deadlocks", f"sum by (datname) (pg_stat_database_deadlocks{{{FILTER}}})", board="database"),
    ),
    "histogram-count-without-rate": (
        "target-counter-agg-rule",
        set_expr("Request rate", f"sum(http_server_requests_seconds_count{{{FILTER}}})", board="system-overview"),
    ),
    "metric-not-in-catalog": (
        "target-metric-catalog-rule", set_expr("Consumers", f"sum(medobs_queue_consumer_count{{{FILTER}}})"),
    ),
}


def test_every_built_dashboard_passes():
    result = medobs("dashboards", "lint")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "5 dashboards, 0 violations"


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    for case, (_rule, mutate) in BROKEN.items():
        model = copy.deepcopy(built(getattr(mutate, "board", "message-queue")))
        mutate(model)
        (folder / f"{case}.json").write_text(json.dumps(model))
    return folder, medobs("dashboards", "lint", str(folder))


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_rule_catches_a_dashboard_that_breaks_it(broken_run, case):
    folder, result = broken_run
    assert result.returncode == 1
    rule = BROKEN[case][0]
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"{folder / case}.json: ")]
    assert [re.match(r"\S+: \[([\w-]+)\]", line)[1] for line in lines] == [rule], lines


def test_every_rule_has_a_breaking_case(broken_run):
    assert sorted({rule for rule, _ in BROKEN.values()}) == sorted(lint.RULE_NAMES)
    _folder, result = broken_run
    emitted = set(re.findall(r"^\S+: \[([\w-]+)\]", result.stdout, re.M))
    assert emitted <= set(lint.RULE_NAMES)


def test_summary_counts_violations(broken_run):
    _folder, result = broken_run
    violations = [line for line in result.stdout.splitlines() if "] " in line]
    assert result.stdout.strip().splitlines()[-1] == f"{len(BROKEN)} dashboards, {len(violations)} violations"


def test_broken_json_is_one_clear_line(tmp_path):
    (tmp_path / "bad.json").write_text('{"title": "x", "panels": [}')
    result = medobs("dashboards", "lint", str(tmp_path / "bad.json"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"medobs dashboards: error: {tmp_path / 'bad.json'}: not valid JSON: Expecting value at line 1"
    )


def test_missing_path_is_one_clear_line(tmp_path):
    result = medobs("dashboards", "lint", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"medobs dashboards: error: {tmp_path / 'nothing'} does not exist: name dashboard JSON files or folders, "
        "or none for the package's"
    ]


def test_with_no_path_the_package_dashboards_are_rendered_as_the_build_writes_them():
    """No build folder needed: the default is the package's dashboards, rendered afresh."""
    fresh, built = load([]), load([BUILT_DASHBOARDS])
    assert [(b.path.name, b.model) for b in fresh] == [(b.path.name, b.model) for b in built]
    assert [str(b.path) for b in fresh] == [f"grafana/dashboards/{b.path.name}" for b in built]
