"""The jsonnet mixin (mixin/), evaluated with the jsonnet library: with its default _config it is
what `medobs build` writes (alerts, recording rules, dashboards), changing _config changes every
use of a value, promtool accepts its rules, and mixin/ is current."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import _jsonnet
import pytest
import yaml

from alerts import all_alerts
from medobs import mixin
from tests.conftest import REPO, medobs, require_binary

MIXIN = REPO / "mixin"
BUILT = REPO / "build"


def evaluate(config: dict[str, Any] | None = None, folder: Path = MIXIN) -> dict[str, Any]:
    """The mixin's hidden fields, with ``config`` merged into its _config as a user would."""
    override = json.dumps(config or {})
    snippet = (
        f"local m = (import 'mixin.libsonnet') + {{ _config+:: {override} }};"
        "{alerts: m.prometheusAlerts, rules: m.prometheusRules, dashboards: m.grafanaDashboards, config: m._config}"
    )
    return json.loads(_jsonnet.evaluate_snippet("test", snippet, jpathdir=[str(folder)]))


def built_rules(kind: str) -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((BUILT / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


def rules(groups: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in groups["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def default() -> dict[str, Any]:
    return evaluate()


def test_mixin_folder_is_current():
    result = medobs("mixin", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_mixin_has_the_kubernetes_mixin_shape():
    assert json.loads((MIXIN / "jsonnetfile.json").read_text())["version"] == 1
    evaluated = json.loads(_jsonnet.evaluate_snippet(
        "shape", "std.objectFieldsAll(import 'mixin.libsonnet')", jpathdir=[str(MIXIN)],
    ))
    assert {"_config", "prometheusAlerts", "prometheusRules", "grafanaDashboards"} <= set(evaluated)


def test_default_config_gives_the_build_s_alerts_names_and_expressions_included(default):
    alerts = rules(default["alerts"])
    built = built_rules("alert")
    assert [(r["alert"], r["expr"]) for r in alerts] == [(r["alert"], r["expr"]) for r in built]
    assert alerts == built  # labels, annotations and `for` too
    assert {"MedobsTargetDown", "MedobsHeartbeat", "GpuTemperatureHigh"} <= {r["alert"] for r in alerts}


def test_default_config_gives_the_build_s_recording_rules(default):
    assert rules(default["rules"]) == built_rules("record") != []


def test_default_config_gives_the_build_s_dashboards(default):
    built = {json.loads(p.read_text())["uid"]: json.loads(p.read_text()) for p in (BUILT / "grafana" / "dashboards").glob("*.json")}
    assert set(default["dashboards"]) == {f"{uid}.json" for uid in built}
    for uid, model in built.items():
        assert default["dashboards"][f"{uid}.json"] == model


def test_runbook_base_and_namespace_reach_every_alert():
    changed = evaluate({"runbookBase": "https://wiki.example.org/runbooks", "namespace": "imaging"})
    ours = {a.name for a in all_alerts()}
    for rule in rules(changed["alerts"]):
        assert rule["annotations"]["runbook_url"].startswith("https://wiki.example.org/runbooks/"), rule["alert"]
        if rule["alert"] in ours:  # the SLO compiler's burn-rate alerts share one runbook and carry no namespace
            assert rule["annotations"]["runbook_url"] == f"https://wiki.example.org/runbooks/{rule['alert']}.md"
            assert rule["labels"]["namespace"] == "imaging"
    restarting = next(r for r in rules(changed["alerts"]) if r["alert"] == "ContainerRestarting")
    assert 'namespace="imaging"' in restarting["expr"]


def test_a_job_selector_switches_to_kube_prometheus_stack_s_jobs(default):
    changed = evaluate({"cadvisorSelector": 'job="kubelet", metrics_path="/metrics/cadvisor"', "cadvisorJob": "kubelet"})

    def target_down(evaluated: dict[str, Any], job: str) -> dict[str, Any]:
        return next(r for r in rules(evaluated["alerts"]) if r["alert"] == "MedobsTargetDown" and r["labels"]["job"] == job)

    before = target_down(default, "cadvisor")
    after = target_down(changed, "kubelet")
    assert before["expr"] == 'up{job="cadvisor"} == 0' and before["labels"]["job"] == "cadvisor"
    assert after["expr"] == 'up{job="kubelet", metrics_path="/metrics/cadvisor"} == 0'
    assert after["labels"]["job"] == "kubelet"


def test_a_threshold_changes_its_expression_and_its_description():
    changed = evaluate({"gpuTemperatureCelsius": 80})
    (rule,) = [r for r in rules(changed["alerts"]) if r["alert"] == "GpuTemperatureHigh"]
    assert rule["expr"].endswith("> 80") and "above 80 °C" in rule["annotations"]["description"]


def test_datasource_and_cluster_defaults_reach_every_dashboard():
    changed = evaluate({"datasourceUid": "prometheus", "cluster": "eu-west"})
    for model in changed["dashboards"].values():
        current = {v["name"]: v["current"]["value"] for v in model["templating"]["list"]}
        assert current["datasource"] == "prometheus" and current["cluster"] == "eu-west"


def test_promtool_accepts_the_evaluated_rules(default, tmp_path):
    path = tmp_path / "mixin-rules.yml"
    path.write_text(yaml.safe_dump({"groups": default["alerts"]["groups"] + default["rules"]["groups"]}))
    result = subprocess.run([require_binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stale_mixin_is_reported(tmp_path):
    out = tmp_path / "mixin"
    assert medobs("mixin", "--out", str(out)).returncode == 0
    (out / "alerts.libsonnet").write_text("{}\n")
    result = medobs("mixin", "--out", str(out), "--check")
    assert result.returncode == 1 and "alerts.libsonnet" in result.stdout


def test_only_values_shown_as_written_are_configurable():
    """A duration spoken in a description ("for 5 minutes") stays literal: a _config key for it
    would change the expression but not the words."""
    keys = {setting.key for setting in mixin.threshold_settings(mixin.alert_thresholds.DEFAULT)[0]}
    assert "gpuTemperatureCelsius" in keys
    assert "gpuTemperatureFor" not in keys  # GpuTemperatureHigh's description says "for 5 minutes"
