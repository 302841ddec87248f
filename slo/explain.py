"""``medobs slo explain``: what each alert tier of an SLO will do, before it pages anyone.

Per tier (the Workbook's numbers for a 30-day period, scaled for others):

- how long a total outage (every event bad) takes to fire it: the long window's error ratio must
  pass ``factor x budget``, which takes ``factor x budget x long window``, plus one evaluation
  and the alert's ``for``;
- the share of the period's error budget spent by then, and at exactly the threshold burn rate
  (``factor x long window / period``: 2% for 14.4x over 1 hour of 30 days);
- how long it keeps firing once the errors stop: until the short window's ratio falls back under
  the threshold, ``short window x (1 - factor x budget)``, plus one evaluation;
- a warning where a tier can never fire (``factor x budget >= 1``: 14.4x a 10% budget needs
  more than 100% errors) and for other traps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from slo import rules, windows
from slo.spec import SLO
from slo.templates import EventsSli


@dataclass(frozen=True)
class TierReport:
    kind: str
    severity: str
    long_window: str
    short_window: str
    burn_rate: float
    can_fire: bool
    #: Seconds from the start of a total outage to the alert firing (None: never).
    detection_seconds: float | None
    #: Share of the period's budget spent when it fires on a total outage (None: never).
    budget_spent_outage: float | None
    #: Share of the period's budget spent over the long window at exactly the threshold rate.
    budget_spent_threshold: float
    #: Seconds the alert keeps firing after a total outage ends (None: never fires).
    reset_seconds: float | None


@dataclass(frozen=True)
class SloReport:
    service: str
    slo: str
    objective_percent: float
    period: str
    error_budget: float
    #: Seconds of total outage the period's budget allows.
    budget_seconds: float
    evaluation_interval_seconds: int
    tiers: list[TierReport]
    #: Traps: a tier that can never fire, a ``for`` that outlasts its short window.
    warnings: list[str]
    #: How the SLO behaves otherwise: a traffic guard, a raw SLI, unknown event units.
    notes: list[str]


def analyse(slo: SLO, evaluation_seconds: int) -> SloReport:
    budget = float(slo.budget)
    tiers, warnings, notes = [], [], []
    for burn in rules.burn_alerts(slo):
        hold = windows.seconds(burn.alert.for_)
        for tier in burn.tiers:
            threshold = tier.factor * budget
            can_fire = threshold < 1
            detection = threshold * tier.long_seconds + evaluation_seconds + hold if can_fire else None
            tiers.append(TierReport(
                kind=tier.kind,
                severity=rules.burn_alert_labels(slo, burn)["severity"],
                long_window=tier.long,
                short_window=tier.short,
                burn_rate=tier.factor,
                can_fire=can_fire,
                detection_seconds=detection,
                budget_spent_outage=detection / (budget * slo.period_seconds) if detection is not None else None,
                budget_spent_threshold=tier.factor * tier.long_seconds / slo.period_seconds,
                reset_seconds=tier.short_seconds * (1 - threshold) + evaluation_seconds if can_fire else None,
            ))
            if not can_fire:
                warnings.append(
                    f"{tier.kind} {tier.long}/{tier.short} can never fire: it needs an error ratio above "
                    f"{tier.factor:g} x {budget:.4g} = {threshold:.0%}; raise the objective or disable "
                    f"{tier.kind}_alert"
                )
            if hold >= tier.short_seconds:
                warnings.append(
                    f"{tier.kind} {tier.long}/{tier.short}: for {burn.alert.for_} is not shorter than the "
                    "short window, so the alert may reset before it fires"
                )
    lengthened = [w for w in windows.WORKBOOK_WINDOWS if windows.window(w, rules.scrape_interval(slo)) != w]
    if lengthened:
        notes.append(
            f"windows {', '.join(lengthened)} hold fewer than {windows.MIN_SCRAPES} scrapes of "
            f"{rules.scrape_interval(slo)}: lengthened to {windows.base_window(rules.scrape_interval(slo))}"
        )
    if evaluation_seconds * windows.MIN_SCRAPES > windows.seconds(rules.base_window(slo)):
        warnings.append(
            f"an evaluation interval of {windows.humanize(evaluation_seconds)} leaves fewer than "
            f"{windows.MIN_SCRAPES} evaluations in the {rules.base_window(slo)} window: alerts react late"
        )
    if not tiers:
        warnings.append("page and ticket alerts are both disabled: the SLO never alerts on its budget")
    if isinstance(slo.sli, EventsSli) and slo.alerting.min_events is not None:
        notes.append(
            f"alerts wait for {slo.alerting.min_events:g} events in their long window: below that "
            "traffic the SLO does not alert at all"
        )
    if not isinstance(slo.sli, EventsSli):
        notes.append("raw SLI: the period's ratio is a time average of 5-minute ratios, not counted events")
    elif slo.sli.scale is None:
        notes.append("the SLI's queries use neither rate() nor a counting function: reports give ratios, not event counts")
    return SloReport(
        service=slo.service,
        slo=slo.name,
        objective_percent=float(slo.objective),
        period=slo.period,
        error_budget=budget,
        budget_seconds=budget * slo.period_seconds,
        evaluation_interval_seconds=evaluation_seconds,
        tiers=tiers,
        warnings=warnings,
        notes=notes,
    )


def _maybe(value: float | None, render) -> str:
    return "never" if value is None else render(value)


def render_text(reports: list[SloReport]) -> str:
    blocks = []
    for report in reports:
        lines = [
            f"{report.service}/{report.slo}: {report.objective_percent:g}% over {report.period}, "
            f"error budget {report.error_budget * 100:g}% ({windows.humanize(report.budget_seconds)} of total outage)",
        ]
        header = ("tier", "windows", "burn", "outage detected after", "budget spent then", "at threshold", "resets after")
        rows = [header] + [
            (
                f"{t.kind} ({t.severity})",
                f"{t.long_window} / {t.short_window}",
                f"{t.burn_rate:g}x",
                _maybe(t.detection_seconds, windows.humanize),
                _maybe(t.budget_spent_outage, lambda v: f"{v:.2%}"),
                f"{t.budget_spent_threshold:.0%}",
                _maybe(t.reset_seconds, windows.humanize),
            )
            for t in report.tiers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(f"  (detection includes one {report.evaluation_interval_seconds}s evaluation and the alert's for)")
        lines += [f"  warning: {w}" for w in report.warnings] + [f"  note: {n}" for n in report.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_json(reports: list[SloReport]) -> str:
    return json.dumps([asdict(r) for r in reports], indent=2) + "\n"
