"""The issue's acceptance, shown with promtool on compiled 99.9% / 30d SLOs: a total outage pages
within 2 minutes, a 0.2x-budget error rate never alerts over 3 simulated days, zero traffic records
0 (never NaN), and the period's ratio counts events rather than averaging ratios. The same holds for
a ``sum by (service)`` SLI over series labelled as kube-prometheus-stack labels them (a stable and
a canary service), with at most one page and one ticket; the same SLO in two environments alerts
only where the outage is."""

import pytest
import yaml

from tests.conftest import medobs
from tests.slo_support import (
    AVAILABILITY_SPEC,
    BY_SERVICE_SPEC,
    alert_rules,
    build,
    run_test,
    write_spec,
)

SELECTOR = '{service="shop", slo="availability", sloth_id="shop-availability"}'
IDENTITY = 'service="shop", slo="availability", sloth_id="shop-availability", sloth_service="shop", sloth_slo="availability"'
ENVIRONMENT_SPEC = """
version: prometheus/v1
service: shop
labels: {env: ENV}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{namespace="ENV", code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{namespace="ENV"}[{{.window}}]))
    alerting:
      name: ShopAvailabilityBudgetBurn
"""


def compiled(tmp_path):
    build(write_spec(tmp_path, AVAILABILITY_SPEC), tmp_path / "out")
    return tmp_path / "out" / "rules" / "slo-shop.yml"


def expected_page(rule_file):
    (page,) = [r for r in alert_rules(rule_file, "ShopAvailabilityBudgetBurn") if r["labels"]["sloth_severity"] == "page"]
    labels = {"service": "shop", "slo": "availability", "team": "web", "sloth_id": "shop-availability",
              "sloth_service": "shop", "sloth_slo": "availability", **page["labels"]}
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
             "exp_samples": [{"labels": "{" + IDENTITY + ', team="web"}', "value": 1}]},
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
    labels = "{" + IDENTITY + ', team="web"}'
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


def kube_series(service: str, code: str, values: str, namespace: str = "shop") -> dict[str, str]:
    """A counter as kube-prometheus-stack's ServiceMonitor labels it."""
    labels = f'job="{service}", namespace="{namespace}", service="{service}", pod="{service}-7d9f-x2", code="{code}"'
    return {"series": f"http_requests_total{{{labels}}}", "values": values}


def firing(selector: str, minute: int, count: int | None) -> dict:
    """A promql_expr_test: how many alert instances fire (None: none)."""
    return {"expr": f'count(ALERTS{{alertstate="firing", {selector}}})', "eval_time": f"{minute}m",
            "exp_samples": [] if count is None else [{"labels": "{}", "value": count}]}


def test_a_by_service_sli_over_stable_and_canary_pages_once_within_a_minute_and_tickets_a_5x_burn(tmp_path):
    build(write_spec(tmp_path, BY_SERVICE_SPEC), tmp_path / "out")
    rule_file = tmp_path / "out" / "rules" / "slo-shop.yml"
    bare = "{" + IDENTITY + "}"
    result = run_test(tmp_path, rule_file, [
        {
            # 600 requests a minute (540 stable, 60 canary), clean for an hour, then every one fails.
            "interval": "1m",
            "input_series": [
                kube_series("shop-stable", "200", "0+540x60 32400x30"), kube_series("shop-stable", "500", "0x60 540+540x29"),
                kube_series("shop-canary", "200", "0+60x60 3600x30"), kube_series("shop-canary", "500", "0x60 60+60x29"),
            ],
            "promql_expr_test": [
                firing('severity="critical"', 60, None),
                # One page a minute into the outage, for the SLO as a whole (not one per service) ...
                firing('service="shop", slo="availability", severity="critical"', 61, 1),
                # ... and at most two alerts in all once the ticket joins it.
                firing('alertname=~".+"', 90, 2),
            ],
        },
        {
            # 5x the budget rate (0.5% errors) for four hours after a clean hour: a ticket, never a page.
            "interval": "1m",
            "input_series": [
                kube_series("shop-stable", "200", "0+540x60 32937.3+537.3x239"),
                kube_series("shop-stable", "500", "0x60 2.7+2.7x239"),
                kube_series("shop-canary", "200", "0+60x60 3659.7+59.7x239"),
                kube_series("shop-canary", "500", "0x60 0.3+0.3x239"),
            ],
            "promql_expr_test": [
                firing('severity="warning", sloth_severity="ticket"', 300, 1),
                {"expr": 'count_over_time(ALERTS{severity="critical"}[5h])', "eval_time": "300m", "exp_samples": []},
            ],
        },
        {
            # Quiet hours: traffic stops for 90 minutes; every ratio records 0, never NaN.
            "interval": "1m",
            "input_series": [
                kube_series("shop-stable", "200", "0+540x60 32400x90"), kube_series("shop-stable", "500", "0x150"),
                kube_series("shop-canary", "200", "0+60x60 3600x90"), kube_series("shop-canary", "500", "0x150"),
            ],
            "promql_expr_test": [
                {"expr": f"slo:sli_error:ratio_rate{window}", "eval_time": "150m",
                 "exp_samples": [{"labels": f"slo:sli_error:ratio_rate{window}{bare}", "value": 0}]}
                for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
            ] + [firing('alertname=~".+"', 150, None)],
        },
    ])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_by_service_sli_stays_silent_for_three_days_at_a_fifth_of_the_budget(tmp_path):
    build(write_spec(tmp_path, BY_SERVICE_SPEC), tmp_path / "out")
    days = 3 * 24 * 60
    result = run_test(tmp_path, tmp_path / "out" / "rules" / "slo-shop.yml", [{
        "interval": "1m",
        "input_series": [
            kube_series("shop-stable", "200", f"0+539.892x{days}"), kube_series("shop-stable", "500", f"0+0.108x{days}"),
            kube_series("shop-canary", "200", f"0+59.988x{days}"), kube_series("shop-canary", "500", f"0+0.012x{days}"),
        ],
        "promql_expr_test": [
            # Not even pending (the absent alert is, at the first evaluation only, before rate() has two samples).
            {"expr": 'count_over_time(ALERTS{alertname="ShopAvailabilityBudgetBurn"}[4d])', "eval_time": f"{days}m",
             "exp_samples": []},
            {"expr": 'count_over_time(ALERTS{alertstate="firing"}[4d])', "eval_time": f"{days}m", "exp_samples": []},
            {"expr": "abs(slo:sli_error:ratio_rate3d - 0.0002) < bool 1e-9", "eval_time": f"{days}m",
             "exp_samples": [{"labels": "{" + IDENTITY + "}", "value": 1}]},
        ],
    }])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_same_slo_in_two_environments_alerts_only_where_the_outage_is(tmp_path):
    specs = [write_spec(tmp_path, ENVIRONMENT_SPEC.replace("ENV", env), f"{env}.yaml") for env in ("prod", "staging")]
    medobs("slo", "build", *map(str, specs), "--out", str(tmp_path / "out"), "--verify", check=True)
    rule_file = tmp_path / "out" / "rules" / "slo-shop.yml"
    result = run_test(tmp_path, rule_file, [{
        "interval": "1m",
        "input_series": [
            kube_series("shop", "200", "0+600x60 36000x30", "prod"), kube_series("shop", "500", "0x60 600+600x29", "prod"),
            kube_series("shop", "200", "0+600x90", "staging"), kube_series("shop", "500", "0x90", "staging"),
        ],
        "promql_expr_test": [
            firing('env="prod", severity="critical", sloth_id="shop-availability-prod"', 61, 1),
            firing('env="prod"', 90, 2),
            {"expr": 'count_over_time(ALERTS{env="staging", alertname="ShopAvailabilityBudgetBurn"}[90m])',
             "eval_time": "90m", "exp_samples": []},
            firing('env="staging"', 90, None),
            {"expr": 'slo:sli_error:ratio_rate5m{env="staging"}', "eval_time": "90m", "exp_samples": [{
                "labels": 'slo:sli_error:ratio_rate5m{env="staging", service="shop", slo="availability", '
                          'sloth_id="shop-availability-staging", sloth_service="shop", sloth_slo="availability"}',
                "value": 0}]},
        ],
    }])
    assert result.returncode == 0, result.stdout + result.stderr
