"""The generated SLO rules: the catalog's names, every window, and PrometheusRule objects valid
against the operator's CRD."""

import jsonschema
import pytest
import yaml

from medobs import package_data
from medobs.core import catalog, links, promql
from medobs.core.catalog import slo as names
from slo import files, rules, spec, windows
from tests.conftest import REPO
from tests.crd_support import crd_validator

BUILT = REPO / "build"
PLATFORM = spec.all_slos(files.platform_specs())


def built_rule_files():
    return sorted((BUILT / "prometheus" / "rules").glob("slo-*.yml"))


def test_windows_match_the_catalog_contract():
    for period in windows.PERIODS:
        assert windows.alert_windows(period) == names.SCALED_ALERT_WINDOWS[period]
    assert windows.alert_windows("30d") == names.ALERT_WINDOWS
    tiers = windows.tiers("30d")
    assert [(t.kind, t.factor, t.long, t.short) for t in tiers] == [
        ("page", 14.4, "1h", "5m"), ("page", 6.0, "6h", "30m"), ("ticket", 3.0, "1d", "2h"), ("ticket", 1.0, "3d", "6h"),
    ]
    # Scaled windows keep each tier's share of the period: 1h of 30d is 56m of 28d.
    assert [(t.long, t.short) for t in windows.tiers("28d")][0] == ("56m", "5m")


def test_durations():
    assert windows.seconds("2d19h12m") == 241920 and windows.duration(241920) == "2d19h12m"
    assert windows.seconds("1w") == 7 * 86400
    for bad in ("", "5", "1h5", "m", "-1h"):
        with pytest.raises(ValueError):
            windows.seconds(bad)


def test_build_writes_slo_rules_tests_and_prometheus_rules():
    built = files.build_files()
    services = {slo.service for slo in PLATFORM}
    assert {f"prometheus/rules/slo-{s}.yml" for s in services} <= set(built)
    assert {f"k8s/slo-{s}.yaml" for s in services} <= set(built)
    assert {f"prometheus/tests/slo-{slo.service}-{slo.name}.yml" for slo in PLATFORM} <= set(built)
    assert not any(p.startswith("prometheus/rules/") and "test" in p for p in built)


@pytest.mark.parametrize("slo", PLATFORM, ids=lambda s: s.key)
def test_every_window_and_metadata_is_recorded_with_service_and_slo(slo):
    recorded = {(r["record"]) for g in rules.groups(slo) for r in g["rules"] if "record" in r}
    labelled = [r for g in rules.groups(slo) for r in g["rules"] if "record" in r]
    for window in set(names.ALERT_WINDOWS) | set(windows.alert_windows(slo.period)):
        assert {f"slo:sli_error:ratio_rate{window}", f"slo:sli_error_events:rate{window}",
                f"slo:sli_total_events:rate{window}"} <= recorded
    assert f"slo:sli_error:ratio_rate{slo.period}" in recorded
    for entry in (names.OBJECTIVE, names.ERROR_BUDGET, names.PERIOD_DAYS, names.BUDGET_REMAINING, names.BURN_RATE,
                  names.PERIOD_BURN_RATE):
        assert entry.name in recorded
    assert all(r["labels"]["service"] == slo.service and r["labels"]["slo"] == slo.name for r in labelled)


def test_every_name_in_the_built_rules_is_in_the_catalog():
    for path in built_rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = promql.metric_names(rule["expr"]) - set(catalog.ALL) - {
                    s for m in catalog.ALL.values() for s in m.series_names
                }
                assert not unknown, f"{path.name}: {unknown}"
                if "record" in rule:
                    assert rule["record"] in catalog.ALL


def test_sloth_interval_gives_each_kind_of_rule_its_group():
    (loaded,) = spec.load(REPO / "tests" / "data" / "sloth" / "custom_rule_group_interval.yml")
    groups = rules.groups(loaded.slos[0])
    assert [(g["name"], g["interval"]) for g in groups] == [
        ("slo-myapp-cpu-availability-sli", "4m"), ("slo-myapp-cpu-availability-meta", "2m"),
        ("slo-myapp-cpu-availability-alerts", "2m"),
    ]


def test_time_slices_are_recorded_once_and_counted_over_windows():
    (freshness,) = [slo for slo in PLATFORM if slo.key == "study-processing/queue-freshness"]
    recorded = {r["record"]: r["expr"] for g in rules.groups(freshness) for r in g["rules"] if "record" in r}
    assert "medobs_queue_oldest_message_age_seconds" in recorded["slo:sli_slice_error:bool"]
    sel = '{service="study-processing", slo="queue-freshness"}'
    assert recorded["slo:sli_total_events:rate2d19h12m"] == f"count_over_time(slo:sli_slice_error:bool{sel}[2d19h12m])"


def test_prometheus_rules_match_the_crd_and_the_rule_files():
    validator = crd_validator("PrometheusRule")
    for slo_service in sorted({slo.service for slo in PLATFORM}):
        (obj,) = list(yaml.safe_load_all((BUILT / "k8s" / f"slo-{slo_service}.yaml").read_text()))
        validator.validate(obj)
        assert obj["kind"] == "PrometheusRule" and obj["metadata"]["namespace"] == "monitoring"
        rule_file = yaml.safe_load((BUILT / "prometheus" / "rules" / f"slo-{slo_service}.yml").read_text())
        assert obj["spec"] == rule_file


def test_crd_validation_catches_a_broken_prometheus_rule():
    obj = files.prometheus_rule("shop", PLATFORM[:1])
    obj["spec"]["groups"][0]["rules"][0]["expr"] = ["not", "a", "query"]
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("PrometheusRule").validate(obj)


def test_every_slo_alert_links_an_existing_runbook_and_the_slo_dashboard():
    for path in built_rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    url = rule["annotations"]["runbook_url"]
                    assert url.startswith(links.RUNBOOK_BASE_URL + "/")
                    assert package_data("alerts", "runbooks", url.removeprefix(links.RUNBOOK_BASE_URL + "/")).exists(), url
                    assert rule["annotations"]["dashboard_url"] == links.dashboard_url("slo")
