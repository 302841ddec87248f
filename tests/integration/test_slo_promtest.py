"""The promtool tests generated for each SLO pass on the generated rules, demand what the issue
asks (a page within the Workbook's detection time, a ticket for a slow burn, silence at half the
budget rate, at zero traffic and across a counter reset), and fail on broken rules."""

import math
import re
from fractions import Fraction

import pytest
import yaml

from medobs import REPO_ROOT
from slo import files, promtest, simulate, spec, windows
from slo.simulate import Phase, Simulation, Timeline, kind_of
from tests.slo_support import AVAILABILITY_SPEC, build, promtool, write_spec

TESTS = REPO_ROOT / "build" / "prometheus" / "tests"
PLATFORM = spec.all_slos(spec.load_all([files.SPECS_DIR]))


def test_generated_tests_of_the_platform_pass():
    paths = sorted(str(p) for p in TESTS.glob("slo-*.yml"))
    assert len(paths) == len(PLATFORM)
    result = promtool("test", "rules", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def groups_of(slo):
    return yaml.safe_load((TESTS / f"slo-{slo.service}-{slo.name}.yml").read_text())["tests"]


def minutes(text: str) -> int:
    return windows.seconds(text) // 60


@pytest.mark.parametrize("slo", PLATFORM, ids=lambda s: s.key)
def test_the_outage_test_demands_a_page_within_the_workbook_detection_time(slo):
    (outage,) = [g for g in groups_of(slo) if "total outage" in g["name"]]
    fast = windows.tiers(slo.period)[0]
    detection = fast.factor * float(slo.budget) * minutes(fast.long)
    start = minutes(fast.long)  # the baseline lasts one long window
    pages = [t for t in outage["alert_rule_test"] if any(
        a["exp_labels"]["severity"] == "critical" and a["exp_labels"]["long_window"] == fast.long
        for a in t["exp_alerts"])]
    assert pages, "the outage test expects no page"
    assert minutes(pages[0]["eval_time"]) - start <= math.ceil(detection) + 1 + minutes(slo.alerting.page.for_)
    quiet = [t for t in outage["alert_rule_test"] if minutes(t["eval_time"]) == start]
    assert quiet and all(t["exp_alerts"] == [] for t in quiet)


@pytest.mark.parametrize("slo", PLATFORM, ids=lambda s: s.key)
def test_the_other_tests_demand_tickets_silence_and_the_absent_alert(slo):
    by_name = {g["name"].split(": ", 1)[1].split(" ")[1]: g for g in groups_of(slo)}
    severities = {a["exp_labels"]["severity"] for t in by_name["slow"]["alert_rule_test"] for a in t["exp_alerts"]}
    assert severities == {"warning"}
    for quiet in ("at", "traffic"):  # "errors at half ...", "zero traffic ..."
        group = next(g for g in groups_of(slo) if quiet in g["name"].split(":")[1].split()[1:3])
        assert all(t["exp_alerts"] == [] for t in group["alert_rule_test"])
    absent = next(g for g in groups_of(slo) if "without data" in g["name"])
    fired = [a for t in absent["alert_rule_test"] for a in t["exp_alerts"]]
    assert [a["exp_labels"]["severity"] for a in fired] == ["warning"]
    reset = [g for g in groups_of(slo) if "counter reset" in g["name"]]
    assert bool(reset) == (kind_of(slo) == "counters")


SELECTOR = '{service="shop", slo="availability"}'


def _regex(pattern, replacement):
    return lambda rule: re.sub(pattern, replacement, rule["expr"])


MUTATIONS = {
    # Sloth's ratio: 0 / 0 is NaN when traffic stops.
    "NaN at zero traffic": _regex(r"\n  / \((slo:sli_total_events:rate\w+\{[^}]*\}) > 0\)\nor\n  \1 \* 0", r"\n  / \1"),
    "thresholds ten times lower": _regex(r"> \((\d+(?:\.\d+)?) \* ", r"> (\1 / 10 * "),
    "delta() instead of rate()": _regex(r"\brate\(", "delta("),
    # Sloth's period: the average of the 5-minute ratios, whatever the traffic behind each.
    "period averages ratios": lambda rule: (
        f"avg_over_time(slo:sli_error:ratio_rate5m{SELECTOR}[30d])"
        if rule.get("record") == "slo:sli_error:ratio_rate30d" else rule["expr"]
    ),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_generated_tests_fail_on_broken_rules(tmp_path, name):
    build(write_spec(tmp_path, AVAILABILITY_SPEC), tmp_path / "out")
    rule_file = tmp_path / "out" / "rules" / "slo-shop.yml"
    test_file = str(tmp_path / "out" / "tests" / "slo-shop-availability.yml")
    good = promtool("test", "rules", test_file)
    assert good.returncode == 0, good.stdout
    data = yaml.safe_load(rule_file.read_text())
    changed = 0
    for rule in data["groups"][0]["rules"]:
        broken = MUTATIONS[name](rule)
        changed += broken != rule["expr"]
        rule["expr"] = broken
    assert changed, f"mutation {name!r} changed nothing"
    rule_file.write_text(yaml.safe_dump(data))
    assert promtool("check", "rules", str(rule_file)).returncode == 0, name
    result = promtool("test", "rules", test_file)
    assert result.returncode != 0, f"the generated tests pass with {name}"


def test_sli_written_in_promql_is_tested_through_a_synthetic_copy(tmp_path):
    sloth = REPO_ROOT / "tests" / "data" / "sloth" / "kubernetes-apiserver.yml"
    build(sloth, tmp_path / "out")
    real = yaml.safe_load((tmp_path / "out" / "rules" / "slo-k8s-apiserver.yml").read_text())["groups"][0]["rules"]
    copy = yaml.safe_load((tmp_path / "out" / "tests" / "rules" / "slo-k8s-apiserver-requests-availability.yml").read_text())
    copied = copy["groups"][0]["rules"]
    assert len(real) == len(copied)
    differing = [(a, b) for a, b in zip(real, copied) if a != b]
    # Only the SLI queries differ: total and error events per window, nothing above them.
    assert differing and all(a.get("record", "").startswith(("slo:sli_total_events:", "slo:sli_error_events:"))
                             for a, _ in differing)
    assert all("apiserver_request_total" in a["expr"] and "medobs_slo_test_" in b["expr"] for a, b in differing)
    test = yaml.safe_load((tmp_path / "out" / "tests" / "slo-k8s-apiserver-requests-availability.yml").read_text())
    assert test["rule_files"] == ["rules/slo-k8s-apiserver-requests-availability.yml"]


def test_compress_writes_promtool_notation_that_never_goes_down():
    values = [Fraction(5997, 10) * i for i in range(61)] + [Fraction(5997, 10) * 60] * 16
    assert promtest.compress(values) == "0+599.7x60 35982.000000000015x15"
    assert promtest.compress([Fraction(1), None, None, Fraction(2), Fraction(2)]) == "1 _x2 2x1"
    assert promtest.compress([Fraction(0), Fraction(10), Fraction(20), Fraction(5), Fraction(15)]) == "0+10x2 5+10x1"


def test_simulation_counts_events_and_applies_for():
    (slo,) = spec.load(REPO_ROOT / "tests" / "data" / "sloth" / "getting-started.yml")[0].slos
    timeline = Timeline((Phase(60, Fraction(0)), Phase(10, Fraction(1))))
    sim = Simulation(slo, timeline, "counters")
    assert sim.ratio(0, "5m") is None  # rate() needs two samples
    assert sim.ratio(62, "1h") == Fraction(2, 60)
    assert sim.ratio(62, "5m") == Fraction(2, 5)
    assert sim.states["0"][60:63] == ["inactive", "firing", "firing"]  # 1h/5m page: 1/60 > 14.4 x 0.1%


def test_alert_states_follow_for_and_stay_unknown_only_while_it_matters():
    assert simulate._states(2, [False, True, True, True, False]) == ["inactive", "pending", "pending", "firing", "inactive"]
    # On a threshold at minute 1: firing by minute 4 either way, unknown before.
    assert simulate._states(2, [False, None, True, True, True]) == ["inactive", "unknown", "pending", "unknown", "firing"]
    assert simulate._states(0, [None, True]) == ["unknown", "firing"]


def test_generated_tests_pass_across_objectives_periods_and_options(tmp_path):
    variants = {
        "ninety-weekly": ("90", "7d", ""),
        "two-nines-four-weeks": ("99", "28d", "      min_events: 1000\n"),
        "four-nines": ("99.99", "30d", "      page_alert:\n        for: 2m\n      ticket_alert:\n        for: 15m\n"),
        "coin-flip": ("50", "30d", "      absent_alert:\n        for: 3m\n"),
    }
    tests = []
    for name, (objective, period, alerting) in variants.items():
        text = (AVAILABILITY_SPEC.replace("service: shop", f"service: {name}").replace("99.9", objective)
                .replace("    sli:", f"    period: {period}\n    sli:") + alerting)
        build(write_spec(tmp_path / name, text), tmp_path / "out")
        tests.append(str(tmp_path / "out" / "tests" / f"slo-{name}-availability.yml"))
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
