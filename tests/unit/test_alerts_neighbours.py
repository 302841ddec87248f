"""Good neighbours in a kube-prometheus-stack cluster: no alert name its default rules define,
the heartbeat at severity ``none``, the labels its inhibitions match on, and inhibitions of ours
that never touch its alerts (a real Alertmanager delivering both kinds:
tests/integration/test_alerts_alertmanager.py)."""

from __future__ import annotations

import dataclasses

import yaml

from alerts import alertmanager, all_alerts, build
from alerts.platform import HEARTBEAT, TARGET_DOWN
from medobs.core import site
from tests.conftest import REPO

KUBE_PROMETHEUS_STACK_ALERTS = REPO / "tests" / "data" / "kube_prometheus_stack_alerts.txt"
BUILT_RULES = REPO / "build" / "prometheus" / "rules"
OTHER_SITE = dataclasses.replace(site.DEFAULT, namespace="imaging-prod")


def kube_prometheus_stack_alert_names() -> set[str]:
    lines = (line.split("#")[0].strip() for line in KUBE_PROMETHEUS_STACK_ALERTS.read_text().splitlines())
    return {line for line in lines if line}


def built_alert_rules() -> list[dict]:
    """Every alerting rule of the build: the alerts' and the SLO compiler's."""
    return [
        rule
        for path in sorted(BUILT_RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_the_list_is_kube_prometheus_stack_s_and_holds_the_names_we_used_to_clash_with():
    names = kube_prometheus_stack_alert_names()
    assert {"TargetDown", "Watchdog", "InfoInhibitor", "KubePodCrashLooping", "KubeHpaMaxedOut"} <= names
    assert len(names) > 100


def test_no_built_alert_takes_a_name_of_kube_prometheus_stack_s_default_rules():
    rules = built_alert_rules()
    assert {rule["alert"] for rule in rules} >= {a.name for a in all_alerts()}  # the build is current
    clashes = {rule["alert"] for rule in rules} & kube_prometheus_stack_alert_names()
    assert clashes == set()


def test_the_check_would_catch_a_clash():
    assert "TargetDown" in kube_prometheus_stack_alert_names() and TARGET_DOWN not in kube_prometheus_stack_alert_names()


def test_the_heartbeat_has_severity_none_and_its_own_receiver():
    (heartbeat,) = [a for a in all_alerts() if a.name == HEARTBEAT]
    assert heartbeat.severity == "none" and heartbeat.expr == "vector(1)"
    routes = alertmanager.route()["routes"]
    assert routes[0]["matchers"] == [f'alertname="{HEARTBEAT}"'] and routes[0]["receiver"] == alertmanager.HEARTBEAT
    assert alertmanager.SEVERITY_RECEIVERS["none"] == alertmanager.NULL


def test_every_rule_carries_the_site_namespace_kube_prometheus_stack_inhibits_by():
    for rule in built_alert_rules():
        if rule["alert"] in {a.name for a in all_alerts()}:  # the SLO compiler's rules are its own
            assert rule["labels"].get("namespace") == site.DEFAULT.namespace, rule["alert"]
    with site.active(OTHER_SITE):
        files = build.rule_files()
    for text in files.values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["namespace"] == "imaging-prod", rule["alert"]
                if "namespace=" in rule["expr"]:  # what the platform alerts watch follows the site too
                    assert 'namespace="imaging-prod"' in rule["expr"], rule["expr"]


def test_our_inhibitions_only_start_from_our_alerts():
    """kube-prometheus-stack's alerts carry no ``service`` label and none of our names: a source
    matcher requiring one keeps a critical of theirs from silencing warnings of theirs."""
    ours = {a.name for a in all_alerts()}
    for rule in alertmanager.inhibit_rules():
        sources = rule["source_matchers"]
        names = {m.split('"')[1] for m in sources if m.startswith('alertname="')}
        assert 'service=~".+"' in sources or (names and names <= ours), rule


def test_where_kube_prometheus_stack_scrapes_the_cluster_the_rules_select_its_jobs():
    kps = dataclasses.replace(
        site.DEFAULT, kube_prometheus_stack=dataclasses.replace(site.DEFAULT.kube_prometheus_stack, scrapes_cluster=True),
    )
    with site.active(kps):
        rules = [r for g in yaml.safe_load(build.rule_files()[build.rule_file_path("platform")])["groups"] for r in g["rules"]]
    down = {r["labels"]["job"]: r["expr"] for r in rules if r["alert"] == TARGET_DOWN}
    assert down["kubelet"] == 'up{job="kubelet", metrics_path="/metrics/cadvisor"} == 0'
    assert down["kube-state-metrics"] == 'up{job="kube-state-metrics"} == 0'
    assert down["node-exporter"] == 'up{job="node-exporter"} == 0'
    assert {"cadvisor", "node"}.isdisjoint(down)
