"""The SLO rules compiled by `medobs slo build`: NaN guards, the Workbook's alerts, the minimum
traffic guard, and promtool-valid rule files."""

from tests.conftest import REPO
from tests.slo_support import (
    AVAILABILITY_SPEC,
    alert_rules,
    build,
    promtool,
    rule_group,
    write_spec,
)

BUILT = REPO / "build"


def built_rule_files():
    return sorted((BUILT / "prometheus" / "rules").glob("slo-*.yml"))


def test_promtool_accepts_every_built_rule_file():
    result = promtool("check", "rules", *map(str, built_rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ratios_guard_against_zero_traffic_and_metadata_numbers_are_exact(tmp_path):
    build(write_spec(tmp_path, AVAILABILITY_SPEC), tmp_path / "out")
    group = rule_group(tmp_path / "out" / "rules" / "slo-shop.yml")
    exprs = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
    sel = '{service="shop", slo="availability"}'
    assert exprs["slo:sli_error:ratio_rate1h"] == (
        f"slo:sli_error_events:rate1h{sel}\n  / (slo:sli_total_events:rate1h{sel} > 0)\nor\n"
        f"  slo:sli_total_events:rate1h{sel} * 0"
    )
    assert exprs["slo:objective:ratio"] == "vector(0.999)"
    assert exprs["slo:error_budget:ratio"] == "vector(0.001)"
    assert exprs["slo:period:days"] == "vector(30)"
    assert exprs["slo:current_burn_rate:ratio"] == f"slo:sli_error:ratio_rate5m{sel} / 0.001"
    assert exprs["slo:period_error_budget_remaining:ratio"] == f"1 - slo:period_burn_rate:ratio{sel}"


def test_workbook_alerts_carry_labels_windows_and_annotations(tmp_path):
    build(write_spec(tmp_path, AVAILABILITY_SPEC), tmp_path / "out")
    rule_file = tmp_path / "out" / "rules" / "slo-shop.yml"
    burn = alert_rules(rule_file, "ShopAvailabilityBudgetBurn")
    assert [(a["labels"]["severity"], a["labels"]["long_window"], a["labels"]["short_window"]) for a in burn] == [
        ("critical", "1h", "5m"), ("critical", "6h", "30m"), ("warning", "1d", "2h"), ("warning", "3d", "6h"),
    ]
    assert "slo:sli_error:ratio_rate1h" in burn[0]["expr"] and "(14.4 * 0.001)" in burn[0]["expr"]
    for alert in burn:
        assert {"summary", "description", "runbook_url", "dashboard_url"} <= set(alert["annotations"])
        assert "{{" not in alert["annotations"]["description"]
    (absent,) = alert_rules(rule_file, "ShopAvailabilitySLIAbsent")
    assert absent["expr"] == 'absent(slo:sli_total_events:rate5m{service="shop", slo="availability"})'
    assert absent["for"] == "10m" and absent["labels"]["severity"] == "warning"


def test_minimum_traffic_guard_is_in_query_units(tmp_path):
    spec_text = AVAILABILITY_SPEC + "      min_events: 360\n"
    build(write_spec(tmp_path, spec_text), tmp_path / "out")
    page = alert_rules(tmp_path / "out" / "rules" / "slo-shop.yml", "ShopAvailabilityBudgetBurn")[0]
    # 360 events in the 1h window = 0.1 requests per second.
    assert page["expr"].endswith('slo:sli_total_events:rate1h{service="shop", slo="availability"} >= 0.1')
