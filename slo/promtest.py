"""A promtool unit-test file for each SLO, generated with its rules.

Each test feeds a known timeline and checks what :mod:`slo.simulate` says the rules must do:

- a total outage pages within the Workbook's detection time, plus an evaluation and ``for``;
- a slow burn (twice the budget rate) opens a ticket and pages nobody;
- errors at half the budget rate raise nothing;
- zero traffic raises nothing and records 0, never NaN;
- a counter reset (a pod restart) raises nothing and leaves the ratios right;
- the period's ratio counts events (a busy clean hour outweighs a quiet bad one);
- an SLI without data raises the absent alert.

Template SLIs are fed the raw series their queries read. An SLI written in PromQL (``events``,
``raw``) cannot be fed raw samples by a generator that does not understand the query, so its
test loads a copy of its rules in which only the SLI queries read two synthetic counters, and
checks everything above them (docs/slo.md says so).
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction
from typing import Any, Literal

from medobs import UserError
from medobs.core.catalog import slo as names
from slo import promql, rules, templates, windows
from slo.promql import Selector
from slo.simulate import Kind, Phase, Simulation, Timeline, kind_of
from slo.spec import SLO
from slo.templates import CounterInputs, EventsSli, SliceInputs

EVALUATION_INTERVAL = "1m"
SYNTHETIC_BAD = "medobs_slo_test_bad_events_total"
SYNTHETIC_TOTAL = "medobs_slo_test_events_total"
_LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


class GenerationError(UserError):
    """A spec whose generated tests cannot be written (the message says why)."""


# --- what the test feeds ---------------------------------------------------------------------


def tested(slo: SLO) -> tuple[SLO, bool]:
    """The SLO the test loads rules for, and whether those are a synthetic copy (see module doc)."""
    if isinstance(slo.sli, EventsSli) and slo.sli.inputs is not None:
        return slo, False
    bad, total = Selector(SYNTHETIC_BAD), Selector(SYNTHETIC_TOTAL)
    counted = templates.counter_ratio(bad, total)
    if isinstance(slo.sli, EventsSli):
        return dataclasses.replace(slo, sli=counted), True
    return dataclasses.replace(slo, sli=templates.raw(f"{counted.error_query} / {counted.total_query}")), True


def _inputs(slo: SLO) -> CounterInputs | SliceInputs:
    if isinstance(slo.sli, EventsSli) and slo.sli.inputs is not None:
        return slo.sli.inputs
    return CounterInputs(good=(SYNTHETIC_TOTAL,), bad=(SYNTHETIC_BAD, SYNTHETIC_TOTAL))


def _number(value: Fraction | float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def compress(values: list[Fraction | None]) -> str:
    """promtool's expanding notation: ``0+600x59 36000+599.4x60 _x3``.

    promtool adds the step again and again in floating point, so a run ends a hair off its exact
    value; the next run starts from that float (plus the exact difference) so that a counter never
    seems to go down, which ``rate()`` would take for a reset."""
    tokens: list[str] = []
    index = 0
    last_exact: Fraction | None = None
    last_float = 0.0
    while index < len(values):
        value = values[index]
        end = index + 1
        if value is None:
            while end < len(values) and values[end] is None:
                end += 1
            tokens.append("_" if end - index == 1 else f"_x{end - index}")
            index = end
            continue
        step = Fraction(0)
        if end < len(values) and values[end] is not None:
            step = values[end] - value  # type: ignore[operator]
            while end < len(values) and values[end] is not None and values[end] - values[end - 1] == step:  # type: ignore[operator]
                end += 1
        runs = end - index - 1
        start = last_float + float(value - last_exact) if last_exact is not None and value >= last_exact else float(value)
        if runs == 0:
            tokens.append(_number(start))
        elif step == 0:
            tokens.append(f"{_number(start)}x{runs}")
        else:
            tokens.append(f"{_number(start)}{'+' if step > 0 else '-'}{_number(abs(step))}x{runs}")
        last_float = start
        for _ in range(runs):
            last_float += float(step)
        last_exact = values[end - 1]
        index = end
    return " ".join(tokens)


def input_series(inputs: CounterInputs | SliceInputs, timeline: Timeline) -> list[dict[str, str]]:
    if not timeline.present:
        return []
    minutes = range(timeline.minutes + 1)
    if isinstance(inputs, SliceInputs):
        observed = [Fraction(0) if s is None else Fraction(1) for s in timeline.bad_slices]
        gauge = [None if s is None else Fraction(str(inputs.bad_value if s else inputs.good_value)) for s in timeline.bad_slices]
        series = [{"series": inputs.presence, "values": compress(observed)}]
        if any(v is not None for v in gauge):
            series.append({"series": inputs.gauge, "values": compress(gauge)})
        return series
    out = []
    for name in dict.fromkeys(inputs.good + inputs.bad):
        values, current = [], Fraction(0)
        for minute in minutes:
            bad, total = timeline.bad_and_total(minute)
            step = (total - bad if name in inputs.good else 0) + (bad if name in inputs.bad else 0)
            current = step if minute in timeline.resets else current + step
            values.append(current)
        out.append({"series": name, "values": compress(values)})
    return out


# --- scenarios -------------------------------------------------------------------------------


Expect = Literal["quiet", "page", "ticket", "absent"]


@dataclasses.dataclass
class Scenario:
    name: str
    timeline: Timeline
    #: When to check the alerts, and what the test must show then: no alert, a page, a ticket
    #: (and no page), the absent alert. A page or ticket the SLO cannot raise is not demanded.
    alert_checks: list[tuple[int, Expect]]
    #: (minute, series) whose value the test checks: an error-ratio window, "burn_rate", "remaining".
    values: list[tuple[int, str]] = dataclasses.field(default_factory=list)


def _minutes(duration: str) -> int:
    return windows.seconds(duration) // 60


def scenarios(slo: SLO, kind: Kind) -> list[Scenario]:
    """The tests of one SLO. Lengths are kept to what each check needs: promtool evaluates every
    rule of the file every simulated minute."""
    budget = Fraction(slo.budget)
    tiers = windows.tiers(slo.period)
    # The fastest page that can fire at all (14.4x a 10% budget cannot): the one an outage trips.
    fast = next((t for t in tiers if t.kind == "page" and t.factor * budget < 1), tiers[0])
    baseline = _minutes(fast.long)
    detection = Fraction(str(fast.factor)) * budget * baseline
    outage_check = baseline + math.ceil(detection) + 1 + _minutes(slo.alerting.page.for_)
    burn = min(2 * budget, (1 + budget) / 2)
    lead = max(5, baseline // 2)
    burn_check = lead + 2 * math.ceil(lead * budget / (burn - budget)) + _minutes(slo.alerting.ticket.for_) + 2
    # Time slices are whole minutes: run long enough for a few bad ones at half the budget rate.
    quiet = 120 if kind != "slices" else max(120, math.ceil(Fraction(3, 2) / (budget / 2)))
    absent_check = _minutes(slo.alerting.absent.for_) + 2
    found = [
        Scenario(
            f"a total outage pages within {windows.humanize(float(detection) * 60)} (the Workbook's detection "
            f"time for {fast.factor:g}x over {fast.long}) plus an evaluation and for",
            Timeline((Phase(baseline, budget / 10), Phase(outage_check - baseline + 10, Fraction(1)))),
            [(baseline, "quiet"), (outage_check, "page")],
        ),
        Scenario(
            f"a slow burn at {float(burn / budget):g}x the budget rate opens a ticket and pages nobody",
            Timeline((Phase(lead, Fraction(0)), Phase(burn_check - lead + 10, burn))),
            [(lead, "quiet"), (burn_check, "ticket")],
        ),
        Scenario(
            "errors at half the budget rate raise nothing",
            Timeline((Phase(quiet, budget / 2),)),
            [(minute, "quiet") for minute in (30, 60, quiet // 2, quiet)],
        ),
        Scenario(
            "zero traffic raises nothing and records 0, never NaN",
            Timeline((Phase(60, Fraction(0), traffic=Fraction(0)),)),
            [(30, "quiet"), (60, "quiet")],
            [(60, window) for window in (*rules.sli_windows(slo), slo.period, "burn_rate", "remaining")],
        ),
        Scenario(
            "the period's ratio counts events: a busy clean hour outweighs a quiet bad one",
            Timeline((Phase(60, Fraction(0)), Phase(60, min(Fraction(1), 10 * budget), traffic=Fraction(60)))),
            [],
            [(120, slo.period), (120, "remaining")],
        ),
        Scenario(
            "an SLI without data raises the absent alert",
            Timeline((Phase(absent_check + 5, Fraction(0)),), present=False),
            [(absent_check, "absent")],
        ),
    ]
    if kind != "slices":
        found.insert(4, Scenario(
            "a counter reset (a pod restart) raises nothing and keeps the ratios right",
            Timeline((Phase(45, budget / 2), Phase(45, budget / 2, reset=True))),
            [(minute, "quiet") for minute in (46, 47, 51, 90)],
            [(46, rules.BASE_WINDOW), (48, rules.BASE_WINDOW), (90, "1h")],
        ))
    return found


# --- expectations ----------------------------------------------------------------------------


def _expand(text: str, labels: dict[str, str], slo: SLO, what: str) -> str:
    """Prometheus's template expansion of an alert label or annotation, for the ``$labels.x``
    form only; anything else cannot be predicted by a generated test."""
    expanded = _LABEL_TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), text)
    if "{{" in expanded:
        raise GenerationError(
            f"{slo.source}: SLO {slo.key}: {what} uses a template other than {{{{ $labels.NAME }}}}, "
            "which generated tests cannot predict"
        )
    return expanded


def _expected_alert(slo: SLO, series: dict[str, str], labels: dict[str, str], annotations: dict[str, str]) -> dict:
    final = {**series, **{k: _expand(v, series, slo, f"alert label {k}") for k, v in labels.items()}}
    return {
        "exp_labels": dict(sorted(final.items())),
        "exp_annotations": {k: _expand(v, series, slo, f"annotation {k}") for k, v in sorted(annotations.items())},
    }


def _settled(sim: Simulation, minute: int, scenario: Scenario) -> int:
    """The first minute from ``minute`` on at which no alert state hangs on float rounding."""
    for candidate in range(minute, sim.timeline.minutes + 1):
        if all(states[candidate] != "unknown" for states in sim.states.values()):
            return candidate
    raise GenerationError(f"SLO {sim.slo.key}: test {scenario.name!r}: alert states stay on a threshold")


def alert_tests(slo: SLO, sim: Simulation, minute: int) -> tuple[list[dict], set[str]]:
    """promtool alert_rule_test entries at ``minute`` and which tiers fire (``page``/``ticket``/``absent``)."""
    burn: list[dict] = []
    fired: set[str] = set()
    series = rules.identity_labels(slo)
    for index, tier_alert in enumerate(rules.tier_alerts(slo)):
        if sim.states[str(index)][minute] == "firing":
            fired.add(tier_alert.tier.kind)
            burn.append(_expected_alert(
                slo, series, rules.burn_alert_labels(slo, tier_alert), rules.burn_alert_annotations(slo, tier_alert)
            ))
    tests = []
    if rules.tier_alerts(slo):
        tests.append({"eval_time": f"{minute}m", "alertname": rules.burn_alert_name(slo), "exp_alerts": burn})
    if not slo.alerting.absent.disable:
        absent = []
        if sim.states["absent"][minute] == "firing":
            fired.add("absent")
            absent_series = {"service": slo.service, "slo": slo.name} if isinstance(slo.sli, EventsSli) else {}
            absent.append(_expected_alert(
                slo, absent_series, rules.absent_alert_labels(slo), rules.absent_alert_annotations(slo)
            ))
        tests.append({"eval_time": f"{minute}m", "alertname": rules.absent_alert_name(slo), "exp_alerts": absent})
    return tests, fired


def _series_value(slo: SLO, sim: Simulation, minute: int, what: str) -> tuple[str, Fraction | None]:
    """The series checked (rule name) and its value per the simulation."""
    if what == "burn_rate":
        ratio = sim.ratio(minute, rules.BASE_WINDOW)
        return str(names.BURN_RATE), None if ratio is None else ratio / Fraction(slo.budget)
    if what == "remaining":
        ratio = sim.ratio(minute, slo.period)
        return str(names.BUDGET_REMAINING), None if ratio is None else 1 - ratio / Fraction(slo.budget)
    return str(names.ERROR_RATIO[what]), sim.ratio(minute, what)


def value_test(slo: SLO, sim: Simulation, minute: int, what: str) -> dict:
    """A promql_expr_test: exact for 0 and 1, within 1e-9 (relative) otherwise, none for no sample."""
    name, value = _series_value(slo, sim, minute, what)
    series = f"{name}{rules.selector(slo)}"
    labels = rules.identity_labels(slo)
    if value is None:
        return {"expr": series, "eval_time": f"{minute}m", "exp_samples": []}
    if value in (0, 1):
        return {"expr": series, "eval_time": f"{minute}m",
                "exp_samples": [{"labels": promql.series_text(name, labels), "value": int(value)}]}
    tolerance = max(abs(float(value)) * 1e-9, 1e-15)
    return {
        "expr": f"abs({series} - {_number(value)}) < bool {tolerance:.3g}",
        "eval_time": f"{minute}m",
        "exp_samples": [{"labels": promql.series_text("", labels), "value": 1}],
    }


def _check(slo: SLO, scenario: Scenario, minute: int, expect: Expect, fired: set[str]) -> None:
    """What the issue asks the tests to show; a failure here is a compiler bug, not a spec's."""
    tiers = rules.tier_alerts(slo)
    can_fire = {t.tier.kind for t in tiers if t.tier.factor * float(slo.budget) < 1}
    if not slo.alerting.absent.disable:
        can_fire.add("absent")
    wrong = (
        (expect == "quiet" and fired)
        or (expect in can_fire and expect not in fired)
        or (expect == "ticket" and "page" in fired)
    )
    if wrong:
        raise GenerationError(f"SLO {slo.key}: test {scenario.name!r} fires {sorted(fired)} at {minute}m (expected {expect})")


def test_group(slo: SLO, scenario: Scenario, kind: Kind) -> dict[str, Any]:
    sim = Simulation(slo, scenario.timeline, kind)
    group: dict[str, Any] = {
        "name": f"{slo.name}: {scenario.name}",
        "interval": EVALUATION_INTERVAL,
        "input_series": input_series(_inputs(slo), scenario.timeline),
    }
    alert_checks = []
    for requested, expect in scenario.alert_checks:
        minute = _settled(sim, requested, scenario)
        checks, fired = alert_tests(slo, sim, minute)
        _check(slo, scenario, minute, expect, fired)
        alert_checks += checks
    if alert_checks:
        group["alert_rule_test"] = alert_checks
    if scenario.values:
        group["promql_expr_test"] = [value_test(slo, sim, minute, what) for minute, what in scenario.values]
    return group


def test_file(slo: SLO, rule_file: str, group_order: list[str]) -> dict[str, Any]:
    """The promtool test file of ``slo`` (already the :func:`tested` SLO) reading ``rule_file``."""
    kind = kind_of(slo)
    return {
        "rule_files": [rule_file],
        "evaluation_interval": EVALUATION_INTERVAL,
        "group_eval_order": group_order,
        "tests": [test_group(slo, scenario, kind) for scenario in scenarios(slo, kind)],
    }
