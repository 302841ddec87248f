"""The alert rules: what every alert carries, the catalog, the unit-test cases, runbooks and the
PrometheusRule objects (promtool on them: tests/integration/test_alerts_rules.py)."""

import re
from dataclasses import fields, replace

import jsonschema
import pytest
import yaml

from alerts import (
    DOMAINS,
    alerts_by_domain,
    all_alerts,
    build,
    model,
    thresholds,
    unittests,
)
from alerts.model import REQUIRED_ANNOTATIONS, REQUIRED_LABELS, SEVERITIES
from medobs import package_data
from medobs.core import catalog, durations, links, promql, scrape_jobs, site
from tests.conftest import REPO, promql_blocks
from tests.crd_support import crd_validator

ALERTS = all_alerts()
NAMES = sorted({alert.name for alert in ALERTS})
RUNBOOKS = package_data("alerts", "runbooks")
BUILT = REPO / "build" / "prometheus"
#: Alerts that fire all the time by design: their test shows them firing on healthy series.
ALWAYS_FIRING = {"MedobsHeartbeat"}
#: Rule families whose service label depends on the job or exporter.
VARYING_SERVICE = {"MedobsTargetDown", "ScrapeJobMissing", "ExporterCollectionFailing"}


def unknown_metrics(expr: str) -> set[str]:
    return {name for name in promql.metric_names(expr) if catalog.lookup(name) is None}


def expressions(block: str) -> list[str]:
    """The expressions of a runbook's PromQL block: one a line, a line indented deeper continues one."""
    found: list[str] = []
    margin = None
    for line in filter(str.strip, block.splitlines()):
        indent = len(line) - len(line.lstrip())
        margin = indent if margin is None else margin
        if indent > margin and found:
            found[-1] += "\n" + line
        else:
            found.append(line)
    return found


def built_rules(name: str) -> list[dict]:
    return [
        rule
        for path in sorted(BUILT.glob("rules/alerts-*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if rule.get("alert") == name
    ]


@pytest.mark.parametrize("name", NAMES)
def test_every_alert_carries_severity_service_and_the_four_annotations(name):
    rules = built_rules(name)
    assert rules, f"{name} is not in build/prometheus/rules/ (run `make build`)"
    for rule in rules:
        assert set(REQUIRED_LABELS) <= set(rule["labels"]), rule["labels"]
        assert rule["labels"]["severity"] in SEVERITIES
        for annotation in REQUIRED_ANNOTATIONS:
            assert rule["annotations"].get(annotation, "").strip(), f"{name} has no {annotation}"
        assert rule["annotations"]["runbook_url"] == links.runbook_url(name)
        uid = rule["annotations"]["dashboard_url"].rsplit("/", 1)[1]
        assert uid in links.DASHBOARD_UIDS.values()
        if not rule["expr"].startswith(("absent(", "vector(")):  # no series labels or value to show
            assert "{{" in rule["annotations"]["description"], f"{name}: the description shows no label or value"


def test_every_expression_uses_only_catalogued_metrics():
    unknown = {alert.name: unknown_metrics(alert.expr) for alert in ALERTS if unknown_metrics(alert.expr)}
    assert unknown == {}


def test_the_catalog_check_catches_a_metric_it_does_not_know():
    assert unknown_metrics('rate(medobs_gpu_made_up_total{job="gpu"}[5m]) > 0') == {"medobs_gpu_made_up_total"}


def test_job_matchers_name_scrape_jobs_and_every_job_has_a_service():
    jobs = {job for alert in ALERTS for job in re.findall(r'\bjob="([^"]+)"', alert.expr)}
    assert jobs <= set(scrape_jobs.JOB_NAMES)
    assert set(model.JOB_SERVICES) == set(scrape_jobs.JOB_NAMES)


def test_every_scrape_job_has_its_target_down_and_missing_rules():
    for name in ("MedobsTargetDown", "ScrapeJobMissing"):
        assert sorted(a.labels["job"] for a in ALERTS if a.name == name) == sorted(scrape_jobs.JOB_NAMES)


def test_for_durations_filter_noise_without_hiding_outages():
    for alert in ALERTS:
        seconds = durations.seconds(alert.for_)
        assert seconds <= 3600, f"{alert.name}: for {alert.for_} hides problems for too long"
        if alert.severity == "critical":
            assert seconds <= 300, f"{alert.name}: a page must not wait {alert.for_}"


def test_shortened_thresholds_change_durations_only():
    """The end-to-end run's thresholds (tests/test_stack_alerts_e2e.py): every `for` a twentieth
    of production (at most a minute), every window at most a minute, everything else the same."""
    fast = thresholds.shortened(thresholds.DEFAULT, divisor=20, longest="1m")
    for domain in fields(thresholds.DEFAULT):
        slow, quick = getattr(thresholds.DEFAULT, domain.name), getattr(fast, domain.name)
        for f in fields(slow):
            before, after = getattr(slow, f.name), getattr(quick, f.name)
            if f.type == "For":
                assert durations.seconds(after) == min(durations.seconds(before) // 20, 60), f.name
            elif f.type == "Window":
                assert durations.seconds(after) == min(durations.seconds(before), 60), f.name
            else:
                assert after == before, f.name
                assert not re.fullmatch(r"\d+[smhd]", str(before)), f"{f.name} is a duration: type it For or Window"


def test_shortened_rules_are_the_production_rules_with_shorter_durations():
    window = re.compile(r"\[(\d+[smhd])\]")
    fast = alerts_by_domain(thresholds.shortened(thresholds.DEFAULT, divisor=20, longest="1m"))
    for domain, production in alerts_by_domain().items():
        for slow, quick in zip(production, fast[domain], strict=True):
            assert (quick.name, quick.severity, quick.service, quick.labels, quick.summary) == (
                slow.name, slow.severity, slow.service, slow.labels, slow.summary)
            assert durations.seconds(quick.for_) == min(durations.seconds(slow.for_) // 20, 60), quick.name
            assert all(durations.seconds(w) <= 60 for w in window.findall(quick.expr)), quick.expr


def test_alert_names_are_unique_per_domain_and_camel_case():
    owner = {}
    for domain, alerts in alerts_by_domain().items():
        for alert in alerts:
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", alert.name)
            assert owner.setdefault(alert.name, domain) == domain, f"{alert.name} is defined in two domains"


def test_description_placeholders_must_all_be_filled():
    alert = next(a for a in ALERTS if a.name == "GpuTemperatureHigh")
    with pytest.raises(KeyError):
        replace(alert, values={}).annotations


@pytest.mark.parametrize("name", NAMES)
def test_every_alert_fires_on_a_failure_and_stays_silent_on_healthy_and_borderline_series(name):
    domain = next(d for d, alerts in alerts_by_domain().items() if any(a.name == name for a in alerts))
    cases = [case for case in unittests.cases(domain) if case.alertname == name]
    kinds = {(case.kind, case.fires) for case in cases}
    if name in ALWAYS_FIRING:
        assert ("healthy", True) in kinds, f"{name} has no test showing it fires on healthy series"
        return
    assert ("failure", True) in kinds, f"{name} has no unit test in which it fires on a failure"
    assert ("healthy", False) in kinds, f"{name} has no unit test in which it is silent on healthy series"
    assert ("borderline", False) in kinds, f"{name} has no unit test in which it is silent on borderline series"
    assert ("healthy", True) not in kinds and ("borderline", True) not in kinds


CRITICAL_XIDS = thresholds.DEFAULT.gpu.critical_xids
#: Application XIDs (13 graphics engine exception, 31 MMU fault, 43 stopped channel): a bug or a
#: killed process, not the GPU; alerts/tests/gpu.yml feeds them beside critical ones.
APPLICATION_XIDS = (13, 31, 43)


def test_every_critical_xid_fires_in_a_unit_test_beside_application_xids():
    groups = [group for group in unittests.load(unittests.source_dir() / "gpu.yml")["tests"] if group["name"].startswith("failure:")]
    fired = {
        int(alert["exp_labels"]["xid"])
        for group in groups for case in group["alert_rule_test"] if case["alertname"] == "GpuXidCriticalError"
        for alert in case.get("exp_alerts") or []
    }
    fed = {int(m) for group in groups for s in group["input_series"] for m in re.findall(r'xid="(\d+)"', s["series"])}
    assert fired == set(CRITICAL_XIDS)
    assert set(APPLICATION_XIDS) <= fed - fired


# --- runbooks ---------------------------------------------------------------------------------


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


@pytest.mark.parametrize("name", NAMES)
def test_every_alert_has_a_runbook_with_meaning_three_checks_mitigation_and_escalation(name):
    path = RUNBOOKS / f"{name}.md"
    assert path.exists(), f"{name} has no runbook at {path}"
    text = path.read_text()
    assert text.startswith(f"# {name}\n")
    alert = next(a for a in ALERTS if a.name == name)
    header = text.splitlines()[2]
    assert f"**Severity:** {alert.severity}" in header
    assert (f"**For:** {alert.for_}" if alert.for_ != "0m" else "**For:** fires at once") in header
    if name not in VARYING_SERVICE:
        assert f"**Service:** `{alert.service}`" in header
    sections = _sections(text)
    assert list(sections) == ["What it means", "First checks", "Mitigation", "Escalation"]
    checks = re.findall(r"^\d+\. ", sections["First checks"], flags=re.M)
    assert len(checks) >= 3, f"{name}: fewer than three first checks"
    assert sections["First checks"].count("```") >= 6, f"{name}: every check needs its PromQL or command"
    for section in ("What it means", "Mitigation", "Escalation"):
        assert len(sections[section].split()) >= 6, f"{name}: section {section} is empty"


@pytest.mark.parametrize("name", NAMES)
def test_runbook_promql_uses_only_catalogued_metrics(name):
    text = (RUNBOOKS / f"{name}.md").read_text()
    for block in promql_blocks(text):
        for expr in expressions(block):
            assert unknown_metrics(expr) == set(), f"{name}: {expr}"


def test_no_runbook_without_an_alert():
    """Runbooks of alerts that no longer exist (here or in other generated rule files, e.g. the
    SLO alerts) are removed with them."""
    built = {
        rule["alert"]
        for path in BUILT.glob("rules/*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert {p.stem for p in RUNBOOKS.glob("*.md")} <= built


# --- Kubernetes -------------------------------------------------------------------------------


def test_prometheus_rules_validate_against_the_operator_crd():
    validator = crd_validator("PrometheusRule")
    objects = list(yaml.safe_load_all((REPO / "build" / "k8s" / "prometheusrules-alerts.yaml").read_text()))
    assert [o["metadata"]["name"] for o in objects] == [f"medobs-alerts-{d}" for d in DOMAINS]
    for obj in objects:
        validator.validate(obj)
        assert obj["metadata"]["namespace"] == scrape_jobs.namespace()
        assert obj["metadata"]["labels"]["release"] == site.current().kube_prometheus_stack.release
    rules = [r for o in objects for g in o["spec"]["groups"] for r in g["rules"]]
    assert len(rules) == len(ALERTS)


def test_prometheus_rules_hold_the_same_groups_as_the_rule_files():
    objects = list(yaml.safe_load_all((REPO / "build" / "k8s" / "prometheusrules-alerts.yaml").read_text()))
    for obj, domain in zip(objects, DOMAINS):
        rule_file = yaml.safe_load((REPO / "build" / build.rule_file_path(domain)).read_text())
        assert obj["spec"]["groups"] == rule_file["groups"]


def test_the_crd_validation_rejects_a_broken_object():
    broken = model.prometheus_rule("gpu", alerts_by_domain()["gpu"])
    broken["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("PrometheusRule").validate(broken)


@pytest.mark.parametrize("key, misspelled", [("for", "fro"), ("labels", "labelz"), ("annotations", "anotations")])
def test_the_crd_validation_rejects_a_misspelled_field(key, misspelled):
    """As `kubectl apply --validate=strict`: an unknown field fails rather than being pruned
    (the keys are optional ones, so only the unknown field can fail the object)."""
    obj = model.prometheus_rule("gpu", alerts_by_domain()["gpu"])
    rule = obj["spec"]["groups"][0]["rules"][0]
    rule[misspelled] = rule.pop(key)
    with pytest.raises(jsonschema.ValidationError, match=f"'{misspelled}' was unexpected"):
        crd_validator("PrometheusRule").validate(obj)
