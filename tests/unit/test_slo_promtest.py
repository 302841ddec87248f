"""The promtool tests generated for each SLO demand what the issue asks (a page within the
Workbook's detection time, a ticket for a slow burn, silence, the absent alert), and the simulation
behind them counts events and applies `for` (promtool runs them: tests/integration/test_slo_promtest.py)."""

import math

import pytest
import yaml

from slo import files, rules, simulate, spec, windows
from slo.simulate import Phase, Simulation, Timeline, kind_of
from tests.conftest import REPO

TESTS = REPO / "build" / "prometheus" / "tests"
PLATFORM = spec.all_slos(files.platform_specs())


def groups_of(slo):
    return yaml.safe_load((TESTS / f"slo-{slo.service}-{slo.name}.yml").read_text())["tests"]


def minutes(text: str) -> int:
    return windows.seconds(text) // 60


@pytest.mark.parametrize("slo", PLATFORM, ids=lambda s: s.key)
def test_the_outage_test_demands_a_page_within_the_workbook_detection_time(slo):
    (outage,) = [g for g in groups_of(slo) if "total outage" in g["name"]]
    fast = rules.tiers(slo)[0]
    detection = fast.factor * float(slo.budget) * minutes(fast.long)
    start = minutes(fast.long)  # the baseline lasts one long window
    pages = [t for t in outage["alert_rule_test"] if any(
        a["exp_labels"]["severity"] == "critical" for a in t["exp_alerts"])]
    assert pages, "the outage test expects no page"
    assert minutes(pages[0]["eval_time"]) - start <= math.ceil(detection) + 1 + minutes(slo.alerting.page.for_)
    quiet = [t for t in outage["alert_rule_test"] if minutes(t["eval_time"]) == start]
    assert quiet and all(t["exp_alerts"] == [] for t in quiet)


@pytest.mark.parametrize("slo", PLATFORM, ids=lambda s: s.key)
def test_the_other_tests_demand_tickets_silence_and_the_absent_alert(slo):
    by_name = {g["name"].split(": ", 1)[1].split(" ")[1]: g for g in groups_of(slo)}
    severities = {a["exp_labels"]["severity"] for t in by_name["slow"]["alert_rule_test"] for a in t["exp_alerts"]}
    assert severities == {"warning"}
    for quiet in ("at", "traffic"):  # "errors at 0.5x ...", "zero traffic ..."
        group = next(g for g in groups_of(slo) if quiet in g["name"].split(":")[1].split()[1:3])
        assert all(t["exp_alerts"] == [] for t in group["alert_rule_test"])
    absent = next(g for g in groups_of(slo) if "without data" in g["name"])
    fired = [a for t in absent["alert_rule_test"] for a in t["exp_alerts"]]
    assert [a["exp_labels"]["severity"] for a in fired] == ["warning"]
    reset = [g for g in groups_of(slo) if "counter reset" in g["name"]]
    assert bool(reset) == (kind_of(slo) == "counters")


def test_simulation_counts_events_and_applies_for():
    (slo,) = spec.load(REPO / "tests" / "data" / "sloth" / "getting-started.yml")[0].slos
    timeline = Timeline((Phase(60, 0.0), Phase(10, 1.0)))
    sim = Simulation(slo, timeline, "counters")
    assert sim.ratio(0, "5m") is None  # rate() needs two samples
    assert sim.ratio(62, "1h") == 2 / 60
    assert sim.ratio(62, "5m") == 2 / 5
    assert sim.states["page"][60:63] == ["inactive", "firing", "firing"]  # 1h/5m page: 1/60 > 14.4 x 0.1%
    assert sim.states["ticket"][60:63] == ["inactive", "firing", "firing"]  # 2h/1d ticket: 1/60 > 3 x 0.1%
    # The period sums the recorded 5-minute events: bad 600 + 1200, total 600 + 1200 + 1800 + 2400 + 58 x 3000.
    assert sim.ratio(62, slo.period) == pytest.approx(1800 / 180000)


def test_a_seven_day_slo_pages_on_a_20x_burn_within_13_minutes_with_at_most_two_alerts():
    (slo,) = spec.parse(
        {"version": "prometheus/v1", "service": "shop", "slos": [{
            "name": "availability", "objective": 99.9, "period": "7d",
            "sli": {"events": {"error_query": 'sum(rate(x{code="500"}[{{.window}}]))',
                               "total_query": "sum(rate(x[{{.window}}]))"}}}]},
        "spec.yaml",
    ).slos
    burn = Simulation(slo, Timeline((Phase(120, 0.0), Phase(30, 20 * float(slo.budget)))), "counters")
    first_page = burn.states["page"].index("firing")
    assert 120 < first_page <= 120 + 13
    outage = Simulation(slo, Timeline((Phase(120, 0.0), Phase(600, 1.0))), "counters")
    firing = [sum(states[t] == "firing" for states in outage.states.values()) for t in range(outage.timeline.minutes + 1)]
    assert max(firing) == 2 and outage.states["page"][121] == "firing"


def test_alert_states_follow_for_and_stay_unknown_only_while_it_matters():
    assert simulate._states(2, [False, True, True, True, False]) == ["inactive", "pending", "pending", "firing", "inactive"]
    # On a threshold at minute 1: firing by minute 4 either way, unknown before.
    assert simulate._states(2, [False, None, True, True, True]) == ["inactive", "unknown", "pending", "unknown", "firing"]
    assert simulate._states(0, [None, True]) == ["unknown", "firing"]
