"""The promtool tests generated for an SLO pass across objectives, periods and options, and fail on
broken rules (the platform's own: tests/integration/test_promtool_build.py)."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from slo import promtest
from slo.simulate import Phase, Timeline
from tests.conftest import REPO
from tests.slo_support import AVAILABILITY_SPEC, build, promtool, write_spec

SELECTOR = '{service="shop", slo="availability", sloth_id="shop-availability"}'


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


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """The availability SLO's build, compiled once; its generated tests pass on it."""
    folder = tmp_path_factory.mktemp("shop")
    build(write_spec(folder, AVAILABILITY_SPEC), folder / "out")
    good = promtool("test", "rules", str(folder / "out" / "tests" / "slo-shop-availability.yml"))
    assert good.returncode == 0, good.stdout
    return folder / "out"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_generated_tests_fail_on_broken_rules(tmp_path, shop, name):
    shutil.copytree(shop, tmp_path / "out")
    rule_file = tmp_path / "out" / "rules" / "slo-shop.yml"
    test_file = str(tmp_path / "out" / "tests" / "slo-shop-availability.yml")
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
    sloth = REPO / "tests" / "data" / "sloth" / "kubernetes-apiserver.yml"
    build(sloth, tmp_path / "out")
    real = yaml.safe_load((tmp_path / "out" / "rules" / "slo-k8s-apiserver.yml").read_text())["groups"][0]["rules"]
    copy = yaml.safe_load((tmp_path / "out" / "tests" / "rules" / "slo-k8s-apiserver-requests-availability.yml").read_text())
    copied = copy["groups"][0]["rules"]
    assert len(real) == len(copied)
    differing = [(a, b) for a, b in zip(real, copied) if a != b]
    # Only the rules reading the SLI queries differ (events and ratios per window), nothing above them.
    assert differing and all(a.get("record", "").startswith(("slo:sli_total_events:", "slo:sli_error_events:",
                                                              "slo:sli_error:ratio_rate")) for a, _ in differing)
    assert all("apiserver_request_total" in a["expr"] and "medobs_slo_test_" in b["expr"] for a, b in differing)
    test = yaml.safe_load((tmp_path / "out" / "tests" / "slo-k8s-apiserver-requests-availability.yml").read_text())
    assert test["rule_files"] == ["rules/slo-k8s-apiserver-requests-availability.yml"]


def test_counters_are_written_in_promtool_notation_that_never_goes_down():
    timeline = Timeline((Phase(60, 0.0005, traffic=600.0), Phase(16, 0.0, traffic=0.0), Phase(3, 0.5, reset=True)))
    good = promtest.counter_values(timeline, (False, True))
    # 599.7 a minute for 60 minutes; the next run starts from where promtool's float additions ended.
    assert good == "0 599.7+599.7x59 35982.000000000015x15 300+300x2"
    assert promtest.counter_values(timeline, (True, True)) == "0 600+600x59 36000x15 600+600x2"
    assert promtest.compress([1.0, None, None, 2.0, 2.0]) == "1 _x2 2x1"


@pytest.mark.slow
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
        build(write_spec(tmp_path / name, text), tmp_path / "out" / name)
        tests.append(str(tmp_path / "out" / name / "tests" / f"slo-{name}-availability.yml"))
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
