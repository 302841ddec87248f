"""The SLO rules compiled by `medobs slo build`: NaN guards, the Workbook's alerts, the minimum
traffic guard, and promtool-valid rule files."""

from medobs.core import site
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
    sel = '{service="shop", slo="availability", sloth_id="shop-availability"}'
    assert exprs["slo:sli_error:ratio_rate5m"] == (
        f"slo:sli_error_events:rate5m{sel}\n  / (slo:sli_total_events:rate5m{sel} > 0)\nor\n"
        f"  slo:sli_total_events:rate5m{sel} * 0"
    )
    # Other windows read the queries, as Sloth's do; NaN (no traffic in the window) records 0.
    assert exprs["slo:sli_error:ratio_rate1h"].endswith(f") >= 0\nor on ()\n  slo:sli_total_events:rate5m{sel} * 0")
    assert exprs["slo:objective:ratio"] == "vector(0.999)"
    assert exprs["slo:error_budget:ratio"] == "vector(0.001)"
    assert exprs["slo:time_period:days"] == "vector(30)"
    assert exprs["slo:current_burn_rate:ratio"] == f"slo:sli_error:ratio_rate5m{sel} / 0.001"
    assert exprs["slo:period_error_budget_remaining:ratio"] == f"1 - slo:period_burn_rate:ratio{sel}"
    (info,) = [r for r in group["rules"] if r.get("record") == "sloth_slo_info"]
    assert info["labels"] == {
        "service": "shop", "slo": "availability", "sloth_id": "shop-availability", "sloth_objective": "99.9",
        "sloth_service": "shop", "sloth_slo": "availability", "sloth_spec": "prometheus/v1", "team": "web",
    }


def test_workbook_alerts_one_page_one_ticket_each_two_tiers(tmp_path):
    build(write_spec(tmp_path, AVAILABILITY_SPEC), tmp_path / "out")
    rule_file = tmp_path / "out" / "rules" / "slo-shop.yml"
    page, ticket = alert_rules(rule_file, "ShopAvailabilityBudgetBurn")
    assert (page["labels"], ticket["labels"]) == (
        {"namespace": site.current().namespace, "severity": "critical", "sloth_severity": "page"},
        {"namespace": site.current().namespace, "severity": "warning", "sloth_severity": "ticket"},
    )
    sel = '{service="shop", slo="availability", sloth_id="shop-availability"}'
    assert page["expr"] == (
        f"(\n  slo:sli_error:ratio_rate1h{sel} > (14.4 * 0.001)\nand\n  slo:sli_error:ratio_rate5m{sel} > (14.4 * 0.001)\n)"
        f"\nor\n(\n  slo:sli_error:ratio_rate6h{sel} > (6 * 0.001)\nand\n  slo:sli_error:ratio_rate30m{sel} > (6 * 0.001)\n)"
    )
    assert "(3 * 0.001)" in ticket["expr"] and "ratio_rate3d" in ticket["expr"]
    for alert in (page, ticket):
        assert {"summary", "description", "runbook_url", "dashboard_url"} <= set(alert["annotations"])
        assert "{{" not in alert["annotations"]["description"]
    (absent,) = alert_rules(rule_file, "ShopAvailabilitySLIAbsent")
    assert absent["expr"] == f"absent(slo:sli_total_events:rate5m{sel})"
    assert absent["for"] == "10m" and absent["labels"]["severity"] == "warning"


def test_minimum_traffic_guard_is_in_query_units(tmp_path):
    spec_text = AVAILABILITY_SPEC + "      min_events: 360\n"
    build(write_spec(tmp_path, spec_text), tmp_path / "out")
    page = alert_rules(tmp_path / "out" / "rules" / "slo-shop.yml", "ShopAvailabilityBudgetBurn")[0]
    # 360 events in the 1h window = 0.1 requests per second on average over the recorded 5m rates.
    sel = '{service="shop", slo="availability", sloth_id="shop-availability"}'
    assert f"  avg_over_time(slo:sli_total_events:rate5m{sel}[1h]) >= 0.1\n)" in page["expr"]
