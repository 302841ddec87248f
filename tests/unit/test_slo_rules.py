"""The generated SLO rules: the catalog's names, every window, and PrometheusRule objects valid
against the operator's CRD."""

import jsonschema
import pytest
import yaml

from medobs import package_data
from medobs.core import catalog, links, promql, scrape_jobs
from medobs.core.catalog import slo as names
from slo import explain, files, rules, spec, windows
from tests.conftest import REPO
from tests.crd_support import crd_validator

BUILT = REPO / "build"
PLATFORM = spec.all_slos(files.platform_specs())


def built_rule_files():
    return sorted((BUILT / "prometheus" / "rules").glob("slo-*.yml"))


def test_windows_match_the_catalog_contract_and_factors_scale_with_the_period():
    for period in windows.PERIODS:
        assert windows.sli_windows() == names.ALERT_WINDOWS
        assert set(windows.alert_windows(period)) <= set(names.ALERT_WINDOWS)
    tiers = windows.tiers("30d")
    assert [(t.kind, t.factor, t.long, t.short) for t in tiers] == [
        ("page", 14.4, "1h", "5m"), ("page", 6.0, "6h", "30m"), ("ticket", 3.0, "1d", "2h"), ("ticket", 1.0, "3d", "6h"),
    ]
    # Same windows, factors scaled so that each tier fires after the same share of the budget.
    assert [t.factor for t in windows.tiers("28d")] == [13.44, 5.6, 2.8, 0.9333]
    assert [t.factor for t in windows.tiers("7d")] == [3.36, 1.4, 0.7, 0.2333]


def test_no_window_is_shorter_than_four_scrape_intervals():
    assert windows.sli_windows("2m") == ("8m", "30m", "1h", "2h", "6h", "1d", "3d")
    page = windows.tiers("30d", "2m")[0]
    assert (page.long, page.short, page.factor) == ("1h", "8m", 14.4)
    assert windows.sli_windows("15m")[:2] == ("1h", "2h")  # 5m and 30m both become 1h
    assert windows.tiers("30d", "30m")[0].long == "2h" and windows.tiers("30d", "30m")[0].factor == 7.2


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
def test_at_most_17_recording_rules_and_3_alerts_labelled_like_sloth(slo):
    (group,) = rules.groups(slo)
    recorded = [r for r in group["rules"] if "record" in r]
    alerts = [r for r in group["rules"] if "alert" in r]
    assert len(recorded) <= 17 and len(alerts) == 3
    names_recorded = {r["record"] for r in recorded}
    assert {f"slo:sli_error:ratio_rate{w}" for w in (*names.ALERT_WINDOWS, slo.period)} <= names_recorded
    for entry in (names.OBJECTIVE, names.ERROR_BUDGET, names.PERIOD_DAYS, names.BUDGET_REMAINING, names.BURN_RATE,
                  names.PERIOD_BURN_RATE, names.INFO):
        assert entry.name in names_recorded
    assert names.PERIOD_DAYS.name == "slo:time_period:days"
    identity = {"service": slo.service, "slo": slo.name, "sloth_id": f"{slo.service}-{slo.name}",
                "sloth_service": slo.service, "sloth_slo": slo.name, **slo.labels}
    assert all(identity.items() <= r["labels"].items() for r in recorded)
    assert [a["labels"]["sloth_severity"] for a in alerts[:2]] == ["page", "ticket"]


@pytest.mark.parametrize("period", windows.PERIODS)
def test_rule_count_is_the_same_at_every_period(period):
    (slo,) = spec.parse(
        {"version": "prometheus/v1", "service": "shop", "slos": [{
            "name": "availability", "objective": 99.9, "period": period,
            "sli": {"events": {"error_query": 'sum(rate(x{code="500"}[{{.window}}]))',
                               "total_query": "sum(rate(x[{{.window}}]))"}}}]},
        "spec.yaml",
    ).slos
    (group,) = rules.groups(slo)
    assert sum("record" in r for r in group["rules"]) == 17 and sum("alert" in r for r in group["rules"]) == 3


def test_a_slow_scrape_lengthens_the_short_windows_and_explain_says_so():
    (slo,) = spec.parse(
        {"version": "prometheus/v1", "service": "shop", "scrape_interval": "2m", "slos": [{
            "name": "availability", "objective": 99.9,
            "sli": {"events": {"error_query": 'sum(rate(x{code="500"}[{{.window}}]))',
                               "total_query": "sum(rate(x[{{.window}}]))"}}}]},
        "spec.yaml",
    ).slos
    (group,) = rules.groups(slo)
    recorded = [r["record"] for r in group["rules"] if "record" in r]
    assert "slo:sli_error:ratio_rate8m" in recorded and "slo:sli_error:ratio_rate5m" not in recorded
    assert "[8m]" in next(r["expr"] for r in group["rules"] if r.get("record") == names.TOTAL_EVENTS.name)
    page = next(r for r in group["rules"] if r.get("alert"))
    assert "slo:sli_error:ratio_rate8m" in page["expr"]
    report = explain.analyse(slo, 60)
    assert any("lengthened to 8m" in note for note in report.notes)


def test_the_sli_labels_are_aggregated_away_and_never_overwritten():
    (slo,) = spec.parse(
        {"version": "prometheus/v1", "service": "shop", "slos": [{
            "name": "availability", "objective": 99.9,
            "sli": {"events": {"error_query": 'sum by (service) (rate(x{code="500"}[{{.window}}]))',
                               "total_query": "rate(x[{{.window}}])"}}}]},
        "spec.yaml",
    ).slos
    (group,) = rules.groups(slo)
    total = next(r for r in group["rules"] if r.get("record") == names.TOTAL_EVENTS.name)
    assert total["expr"].startswith("sum(\n  rate(x[5m])")
    ratio = next(r for r in group["rules"] if r.get("record") == "slo:sli_error:ratio_rate1h")
    assert "sum(\n    sum by (service) (rate(x{code=\"500\"}[1h]))" in ratio["expr"]


def test_the_same_slo_per_environment_gets_its_own_ids_and_selectors():
    def env(name: str):
        return spec.parse(
            {"version": "prometheus/v1", "service": "shop", "labels": {"env": name, "team": "web"}, "slos": [{
                "name": "availability", "objective": 99.9,
                "sli": {"events": {"error_query": 'sum(rate(x{code="500", env="%s"}[{{.window}}]))' % name,
                                   "total_query": 'sum(rate(x{env="%s"}[{{.window}}]))' % name}}}]},
            f"{name}.yaml",
        ).slos[0]

    prod, staging = env("prod"), env("staging")
    assert rules.slo_ids([prod, staging]) == ["shop-availability-prod", "shop-availability-staging"]
    assert rules.slo_ids([prod]) == ["shop-availability"]
    groups = rules.rule_file([prod, staging])["groups"]
    assert [g["name"] for g in groups] == ["slo-shop-availability-prod", "slo-shop-availability-staging"]
    page = next(r for r in groups[1]["rules"] if r.get("alert"))
    assert 'sloth_id="shop-availability-staging"' in page["expr"] and "prod" not in page["expr"]


def test_alerting_off_means_no_absent_alert_and_the_absent_alert_takes_ticket_labels():
    def compiled(alerting):
        (slo,) = spec.parse(
            {"version": "prometheus/v1", "service": "shop", "slos": [{
                "name": "availability", "objective": 99.9, "alerting": alerting,
                "sli": {"events": {"error_query": 'sum(rate(x{code="500"}[{{.window}}]))',
                                   "total_query": "sum(rate(x[{{.window}}]))"}}}]},
            "spec.yaml",
        ).slos
        return [r for r in rules.groups(slo)[0]["rules"] if "alert" in r]

    off = {"name": "ShopDown", "page_alert": {"disable": True}, "ticket_alert": {"disable": True}}
    assert compiled(off) == []
    ticket = {"name": "ShopDown", "ticket_alert": {"labels": {"severity": "slack", "channel": "#shop"}}}
    absent = compiled(ticket)[-1]
    assert absent["alert"] == "ShopAvailabilitySLIAbsent"
    assert absent["labels"]["severity"] == "slack" and absent["labels"]["channel"] == "#shop"


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
    sel = '{service="study-processing", slo="queue-freshness", sloth_id="study-processing-queue-freshness"}'
    assert recorded["slo:sli_error:ratio_rate3d"] == (
        f"sum_over_time(slo:sli_slice_error:bool{sel}[3d])\n  / (count_over_time(slo:sli_slice_error:bool{sel}[3d]) > 0)"
        f"\nor\n  count_over_time(slo:sli_slice_error:bool{sel}[3d]) * 0"
    )


def test_prometheus_rules_match_the_crd_and_the_rule_files():
    validator = crd_validator("PrometheusRule")
    for slo_service in sorted({slo.service for slo in PLATFORM}):
        (obj,) = list(yaml.safe_load_all((BUILT / "k8s" / f"slo-{slo_service}.yaml").read_text()))
        validator.validate(obj)
        assert obj["kind"] == "PrometheusRule" and obj["metadata"]["namespace"] == scrape_jobs.namespace()
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
                    assert url.startswith(links.runbook_base_url() + "/")
                    assert package_data("alerts", "runbooks", url.removeprefix(links.runbook_base_url() + "/")).exists(), url
                    assert rule["annotations"]["dashboard_url"] == links.dashboard_url("slo")
