"""The issue's acceptance, shown with promtool on a compiled 99.9% / 30d SLO: a total outage pages
within 2 minutes, a 0.2x-budget error rate never alerts over 3 simulated days, zero traffic records
0 (never NaN), and the period's ratio counts events rather than averaging ratios."""

import pytest
import yaml

from tests.slo_support import (
    AVAILABILITY_SPEC,
    alert_rules,
    build,
    run_test,
    write_spec,
)

SELECTOR = '{service="shop", slo="availability"}'


def compiled(tmp_path):
    build(write_spec(tmp_path, AVAILABILITY_SPEC), tmp_path / "out")
    return tmp_path / "out" / "rules" / "slo-shop.yml"


def expected_page(rule_file):
    (page,) = [r for r in alert_rules(rule_file, "ShopAvailabilityBudgetBurn") if r["labels"]["long_window"] == "1h"]
    labels = {"service": "shop", "slo": "availability", "team": "web", **page["labels"]}
    return {"exp_labels": labels, "exp_annotations": page["annotations"]}


@pytest.mark.slow
def test_outage_pages_within_two_minutes_after_three_quiet_days_at_a_fifth_of_the_budget(tmp_path):
    rule_file = compiled(tmp_path)
    days = 3 * 24 * 60  # minutes at 0.2x the budget: 600 requests a minute, 0.02% of them failing
    good = f"0+599.88x{days} {599.88 * days!r}x10"
    bad = f"0+0.12x{days} {0.12 * days + 600!r}+600x9"
    result = run_test(tmp_path, rule_file, [{
        "interval": "1m",
        "input_series": [
            {"series": 'http_requests_total{code="200"}', "values": good},
            {"series": 'http_requests_total{code="500"}', "values": bad},
        ],
        "promql_expr_test": [
            # ALERTS holds every pending or firing alert of every evaluation: no burn-rate alert was
            # even pending in 3 days, and nothing fired (the absent alert is pending at the first
            # evaluation only, before rate() has two samples).
            {"expr": 'count_over_time(ALERTS{alertname="ShopAvailabilityBudgetBurn"}[4d])', "eval_time": f"{days}m",
             "exp_samples": []},
            {"expr": 'count_over_time(ALERTS{alertstate="firing"}[4d])', "eval_time": f"{days}m", "exp_samples": []},
            {"expr": f"abs(slo:sli_error:ratio_rate3d{SELECTOR} - 0.0002) < bool 1e-9", "eval_time": f"{days}m",
             "exp_samples": [{"labels": '{service="shop", slo="availability", team="web"}', "value": 1}]},
        ],
        "alert_rule_test": [
            {"alertname": "ShopAvailabilityBudgetBurn", "eval_time": f"{days}m", "exp_alerts": []},
            # The outage starts after minute `days`: one minute later it pages (1h and 5m over 14.4x),
            # and nothing else fires: the longer windows still hold three good days.
            {"alertname": "ShopAvailabilityBudgetBurn", "eval_time": f"{days + 1}m",
             "exp_alerts": [expected_page(rule_file)]},
            {"alertname": "ShopAvailabilityBudgetBurn", "eval_time": f"{days + 2}m",
             "exp_alerts": [expected_page(rule_file)]},
        ],
    }])
    assert result.returncode == 0, result.stdout + result.stderr


def test_zero_traffic_records_zero_and_the_period_counts_events(tmp_path):
    rule_file = compiled(tmp_path)
    labels = '{service="shop", slo="availability", team="web"}'
    result = run_test(tmp_path, rule_file, [
        {
            "interval": "1m",
            "input_series": [
                {"series": 'http_requests_total{code="200"}', "values": "0x60"},
                {"series": 'http_requests_total{code="500"}', "values": "0x60"},
            ],
            "promql_expr_test": [
                {"expr": f"slo:sli_error:ratio_rate{window}{SELECTOR}", "eval_time": "60m",
                 "exp_samples": [{"labels": f"slo:sli_error:ratio_rate{window}{labels}", "value": 0}]}
                for window in ("5m", "1h", "3d", "30d")
            ] + [
                {"expr": f"slo:period_error_budget_remaining:ratio{SELECTOR}", "eval_time": "60m",
                 "exp_samples": [{"labels": f"slo:period_error_budget_remaining:ratio{labels}", "value": 1}]},
            ],
            "alert_rule_test": [{"alertname": "ShopAvailabilityBudgetBurn", "eval_time": "60m", "exp_alerts": []}],
        },
        {
            # A busy clean hour (36,000 requests), then a quiet one with 10% errors (360 of 3,600),
            # then ten idle minutes so the last 5-minute windows close. Counting events gives
            # 360 / 39,600 = 0.90909%; averaging the 5-minute ratios would give about 5%.
            "interval": "1m",
            "input_series": [
                {"series": 'http_requests_total{code="200"}', "values": "0+600x60 36000+54x60 39240x10"},
                {"series": 'http_requests_total{code="500"}', "values": "0x60 0+6x60 360x10"},
            ],
            "promql_expr_test": [
                {"expr": f"abs(slo:sli_error:ratio_rate30d{SELECTOR} - 360 / 39600) < bool 1e-12", "eval_time": "130m",
                 "exp_samples": [{"labels": labels, "value": 1}]},
                {"expr": f"abs(slo:period_error_budget_remaining:ratio{SELECTOR} - (1 - 360 / 39600 / 0.001)) < bool 1e-9",
                 "eval_time": "130m", "exp_samples": [{"labels": labels, "value": 1}]},
            ],
        },
    ])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_period_rule_reads_recorded_five_minute_events_not_thirty_days_of_raw_series(tmp_path):
    rule_file = compiled(tmp_path)
    rules = {r["record"]: r["expr"] for r in yaml.safe_load(rule_file.read_text())["groups"][0]["rules"] if "record" in r}
    period = rules["slo:sli_error:ratio_rate30d"]
    assert "http_requests_total" not in period and "[30d]" in period
    assert "sum_over_time(slo:sli_error_events:rate5m" in period
    assert "sum_over_time(slo:sli_total_events:rate5m" in period
