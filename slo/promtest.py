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


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _run(start: float, step: float, count: int) -> str:
    """promtool's expanding notation for ``count + 1`` values: ``0+600x59``, ``1x10``, ``5``."""
    if count == 0:
        return _number(start)
    if step == 0:
        return f"{_number(start)}x{count}"
    return f"{_number(start)}{'+' if step > 0 else '-'}{_number(abs(step))}x{count}"


def compress(values: list[float | None]) -> str:
    """promtool's expanding notation of gauge values: ``0x59 1x60 _x3`` (runs of equal values)."""
    tokens: list[str] = []
    index = 0
    while index < len(values):
        end = index + 1
        while end < len(values) and values[end] == values[index]:
            end += 1
        value, count = values[index], end - index
        if value is None:
            tokens.append("_" if count == 1 else f"_x{count}")
        else:
            tokens.append(_run(value, 0, count - 1))
        index = end
    return " ".join(tokens)


def counter_values(timeline: Timeline, moves: tuple[bool, bool]) -> str:
    """A counter that the timeline's bad (``moves[0]``) and good (``moves[1]``) events increment,
    one run per phase. promtool adds a run's step again and again in floating point, so a run ends
    a hair off its exact value; the next run continues from that float so that the counter never
    seems to go down, which ``rate()`` would take for a reset."""
    tokens, last = ["0"], 0.0
    for phase in timeline.phases:
        bad = phase.traffic * phase.share
        step = {(True, True): phase.traffic, (True, False): bad, (False, True): phase.traffic - bad}.get(moves, 0.0)
        start = step if phase.reset else last + step
        tokens.append(_run(start, step, phase.minutes - 1))
        last = start
        for _ in range(phase.minutes - 1):
            last += step
    return " ".join(tokens)


def input_series(inputs: CounterInputs | SliceInputs, timeline: Timeline) -> list[dict[str, str]]:
    if not timeline.present:
        return []
    if isinstance(inputs, SliceInputs):
        observed: list[float | None] = [0.0 if s is None else 1.0 for s in timeline.bad_slices]
        gauge = [None if s is None else (inputs.bad_value if s else inputs.good_value) for s in timeline.bad_slices]
        series = [{"series": inputs.presence, "values": compress(observed)}]
        if any(v is not None for v in gauge):
            series.append({"series": inputs.gauge, "values": compress(gauge)})
        return series
    return [
        {"series": name, "values": counter_values(timeline, (name in inputs.bad, name in inputs.good))}
        for name in dict.fromkeys(inputs.good + inputs.bad)
    ]


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
    budget = float(slo.budget)
    tiers = rules.tiers(slo)
    # The fastest page that can fire at all (14.4x a 10% budget cannot): the one an outage trips.
    fast = next((t for t in tiers if t.kind == "page" and t.factor * budget < 1), tiers[0])
    baseline = _minutes(fast.long)
    detection = fast.factor * budget * baseline
    outage_check = baseline + math.ceil(detection) + 1 + _minutes(slo.alerting.page.for_)
    # A slow burn at twice the slowest ticket tier's rate: above both ticket tiers' thresholds in
    # time, below both pages'.
    slowest = min(t.factor for t in tiers) * budget
    burn = min(2 * slowest, (1 + slowest) / 2)
    lead = max(5, baseline // 2)
    burn_check = lead + 2 * math.ceil(lead * slowest / (burn - slowest)) + _minutes(slo.alerting.ticket.for_) + 2
    calm = slowest / 2
    # Time slices are whole minutes: run long enough for a few bad ones at the calm rate.
    quiet = 120 if kind != "slices" else max(120, math.ceil(1.5 / calm))
    absent_check = _minutes(slo.alerting.absent.for_) + 2
    found = [
        Scenario(
            f"a total outage pages within {windows.humanize(detection * 60)} (the Workbook's detection "
            f"time for {fast.factor:g}x over {fast.long}) plus an evaluation and for",
            Timeline((Phase(baseline, budget / 10), Phase(outage_check - baseline + 10, 1.0))),
            [(baseline, "quiet"), (outage_check, "page")],
        ),
        Scenario(
            f"a slow burn at {burn / budget:.4g}x the budget rate opens a ticket and pages nobody",
            Timeline((Phase(lead, 0.0), Phase(burn_check - lead + 10, burn))),
            [(lead, "quiet"), (burn_check, "ticket")],
        ),
        Scenario(
            f"errors at {calm / budget:.4g}x the budget rate (half the slowest tier's) raise nothing",
            Timeline((Phase(quiet, calm),)),
            [(minute, "quiet") for minute in (30, 60, quiet // 2, quiet)],
        ),
        Scenario(
            "zero traffic raises nothing and records 0, never NaN",
            Timeline((Phase(60, 0.0, traffic=0.0),)),
            [(30, "quiet"), (60, "quiet")],
            [(60, window) for window in (*rules.sli_windows(slo), slo.period, "burn_rate", "remaining")],
        ),
        Scenario(
            "the period's ratio counts events: a busy clean hour outweighs a quiet bad one",
            Timeline((Phase(60, 0.0), Phase(60, min(1.0, 10 * budget), traffic=60.0))),
            [],
            [(120, slo.period), (120, "remaining")],
        ),
        Scenario(
            "an SLI without data raises the absent alert",
            Timeline((Phase(absent_check + 5, 0.0),), present=False),
            [(absent_check, "absent")],
        ),
    ]
    if kind != "slices":
        found.insert(4, Scenario(
            "a counter reset (a pod restart) raises nothing and keeps the ratios right",
            Timeline((Phase(45, calm), Phase(45, calm, reset=True))),
            [(minute, "quiet") for minute in (46, 47, 51, 90)],
            [(46, rules.base_window(slo)), (48, rules.base_window(slo)), (90, "1h")],
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


def alert_tests(slo: SLO, sim: Simulation, minute: int, ident: str | None) -> tuple[list[dict], set[str]]:
    """promtool alert_rule_test entries at ``minute`` and which alerts fire (``page``/``ticket``/``absent``)."""
    burn: list[dict] = []
    fired: set[str] = set()
    series = rules.identity_labels(slo, ident)
    for alert in rules.burn_alerts(slo):
        if sim.states[alert.kind][minute] == "firing":
            fired.add(alert.kind)
            burn.append(_expected_alert(
                slo, series, rules.burn_alert_labels(slo, alert), rules.burn_alert_annotations(slo, alert)
            ))
    tests = []
    if rules.burn_alerts(slo):
        tests.append({"eval_time": f"{minute}m", "alertname": rules.burn_alert_name(slo), "exp_alerts": burn})
    if rules.has_absent_alert(slo):
        absent = []
        if sim.states["absent"][minute] == "firing":
            fired.add("absent")
            # absent() keeps the selector's equality matchers: service, slo and the id.
            absent_series = (
                {"service": slo.service, "slo": slo.name, "sloth_id": ident or rules.slo_id(slo)}
                if isinstance(slo.sli, EventsSli) else {}
            )
            absent.append(_expected_alert(
                slo, absent_series, rules.absent_alert_labels(slo, ident), rules.absent_alert_annotations(slo)
            ))
        tests.append({"eval_time": f"{minute}m", "alertname": rules.absent_alert_name(slo), "exp_alerts": absent})
    return tests, fired


def _series_value(slo: SLO, sim: Simulation, minute: int, what: str) -> tuple[str, float | None]:
    """The series checked (rule name) and its value per the simulation."""
    if what == "burn_rate":
        ratio = sim.ratio(minute, rules.base_window(slo))
        return str(names.BURN_RATE), None if ratio is None else ratio / float(slo.budget)
    if what == "remaining":
        ratio = sim.ratio(minute, slo.period)
        return str(names.BUDGET_REMAINING), None if ratio is None else 1 - ratio / float(slo.budget)
    return rules.error_ratio(what), sim.ratio(minute, what)


def value_test(slo: SLO, sim: Simulation, minute: int, what: str, ident: str | None = None) -> dict:
    """A promql_expr_test: exact for 0 and 1, within 1e-9 (relative) otherwise, none for no sample."""
    name, value = _series_value(slo, sim, minute, what)
    series = f"{name}{rules.selector(slo, ident)}"
    labels = rules.identity_labels(slo, ident)
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
    budget = float(slo.budget)
    can_fire = {a.kind for a in rules.burn_alerts(slo) if any(t.factor * budget < 1 for t in a.tiers)}
    if rules.has_absent_alert(slo):
        can_fire.add("absent")
    wrong = (
        (expect == "quiet" and fired)
        or (expect in can_fire and expect not in fired)
        or (expect == "ticket" and "page" in fired)
    )
    if wrong:
        raise GenerationError(f"SLO {slo.key}: test {scenario.name!r} fires {sorted(fired)} at {minute}m (expected {expect})")


def test_group(slo: SLO, scenario: Scenario, kind: Kind, ident: str | None = None) -> dict[str, Any]:
    sim = Simulation(slo, scenario.timeline, kind)
    group: dict[str, Any] = {
        "name": f"{slo.name}: {scenario.name}",
        "interval": EVALUATION_INTERVAL,
        "input_series": input_series(_inputs(slo), scenario.timeline),
    }
    alert_checks = []
    for requested, expect in scenario.alert_checks:
        minute = _settled(sim, requested, scenario)
        checks, fired = alert_tests(slo, sim, minute, ident)
        _check(slo, scenario, minute, expect, fired)
        alert_checks += checks
    if alert_checks:
        group["alert_rule_test"] = alert_checks
    if scenario.values:
        group["promql_expr_test"] = [value_test(slo, sim, minute, what, ident) for minute, what in scenario.values]
    return group


def test_file(slo: SLO, rule_file: str, group_order: list[str], ident: str | None = None) -> dict[str, Any]:
    """The promtool test file of ``slo`` (already the :func:`tested` SLO) reading ``rule_file``, in
    which the SLO's id is ``ident`` (:func:`slo.rules.slo_ids`)."""
    kind = kind_of(slo)
    return {
        "rule_files": [rule_file],
        "evaluation_interval": EVALUATION_INTERVAL,
        "group_eval_order": group_order,
        "tests": [test_group(slo, scenario, kind, ident) for scenario in scenarios(slo, kind)],
    }
