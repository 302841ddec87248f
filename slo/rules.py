"""Prometheus rules of an SLO: SLI recording rules per window, the period computed from counted
events, metadata, the SRE Workbook's burn-rate alerts and an alert for an absent SLI.

For each window (the Workbook's, the period's scaled ones):

- ``slo:sli_total_events:rate<w>`` = the total query;
- ``slo:sli_error_events:rate<w>`` = the error query, or 0 when it returns nothing;
- ``slo:sli_error:ratio_rate<w>`` = bad / total, 0 when there was no traffic (never NaN or Inf).

The period's ratio is not an ``increase()`` over 28 or 30 days of raw series (millions of
samples every evaluation), nor an average of 5-minute ratios (which weighs a quiet night like a
busy morning): it sums the recorded 5-minute bad and total events over the period and divides,
so every event counts once (docs/slo.md). Raw SLIs (an error ratio, no events) can only be
averaged over time, as Sloth does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from medobs.core import links
from medobs.core.catalog import slo as names
from medobs.core.promql import metric_names
from slo import promql, windows
from slo.spec import SLO, Alert
from slo.templates import EventsSli
from slo.windows import Tier

#: The window of the current burn rate and of the events the period is summed from.
BASE_WINDOW = "5m"
SEVERITY = {"page": "critical", "ticket": "warning"}
ABSENT_SEVERITY = "warning"
#: Runbooks shared by every SLO's alerts (alerts/runbooks/slo/), apart from the per-alert ones.
BURN_RUNBOOK = "slo/error-budget-burn"
ABSENT_RUNBOOK = "slo/sli-absent"


def number(value: Decimal | float) -> str:
    """A number as rule text: ``0.001``, ``14.4``, ``30`` (no float noise, no exponent)."""
    text = format(Decimal(str(value)).normalize(), "f")
    return text


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").replace(".", "-").split("-"))


def burn_alert_name(slo: SLO) -> str:
    return slo.alerting.name or f"{camel(slo.service)}{camel(slo.name)}ErrorBudgetBurn"


def absent_alert_name(slo: SLO) -> str:
    return f"{camel(slo.service)}{camel(slo.name)}SLIAbsent"


def selector(slo: SLO) -> str:
    return f'{{service="{slo.service}", slo="{slo.name}"}}'


def identity_labels(slo: SLO) -> dict[str, str]:
    """Labels every rule of the SLO records: its spec labels, service and slo."""
    return {**slo.labels, "service": slo.service, "slo": slo.name}


def sli_windows(slo: SLO) -> tuple[str, ...]:
    """Windows the SLI is recorded over: the Workbook's (the dashboard reads them) and the ones
    this SLO's alerts use, shortest first."""
    return tuple(sorted(set(names.ALERT_WINDOWS) | set(windows.alert_windows(slo.period)), key=windows.seconds))


def _record(name: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": dict(sorted(labels.items()))}


def _ratio(bad: str, total: str) -> str:
    """bad / total, and 0 rather than NaN when total is 0."""
    return f"{bad}\n  / ({total} > 0)\nor\n  {total} * 0"


def sli_rules(slo: SLO) -> list[dict[str, Any]]:
    labels, sel = identity_labels(slo), selector(slo)
    rules = []
    if isinstance(slo.sli, EventsSli):
        error_query, total_query = slo.sli.error_query, slo.sli.total_query
        if slo.sli.slice_expr:
            rules.append(_record(str(names.SLICE_ERROR), slo.sli.slice_expr, labels))
            error_query = f"sum_over_time({names.SLICE_ERROR}{sel}[{{{{.window}}}}])"
            total_query = f"count_over_time({names.SLICE_ERROR}{sel}[{{{{.window}}}}])"
        for window in sli_windows(slo):
            total = f"{names.TOTAL_EVENTS[window]}{sel}"
            bad = f"{names.ERROR_EVENTS[window]}{sel}"
            rules += [
                _record(str(names.TOTAL_EVENTS[window]), promql.at_window(total_query, window), labels),
                _record(
                    str(names.ERROR_EVENTS[window]),
                    f"(\n  {promql.at_window(error_query, window)}\n)\nor on ()\n  {total} * 0",
                    labels,
                ),
                _record(str(names.ERROR_RATIO[window]), _ratio(bad, total), labels),
            ]
        period_bad = f"sum_over_time({names.ERROR_EVENTS[BASE_WINDOW]}{sel}[{slo.period}])"
        period_total = f"sum_over_time({names.TOTAL_EVENTS[BASE_WINDOW]}{sel}[{slo.period}])"
        rules.append(_record(str(names.ERROR_RATIO[slo.period]), _ratio(period_bad, period_total), labels))
    else:
        for window in sli_windows(slo):
            query = promql.at_window(slo.sli.error_ratio_query, window)
            # A raw ratio is NaN when its own division has no traffic: drop it, never record it.
            ratio = f"clamp_max(\n  (\n{_indent(query, 4)}\n  ) >= 0,\n  1\n)"
            rules.append(_record(str(names.ERROR_RATIO[window]), ratio, labels))
        rules.append(
            _record(
                str(names.ERROR_RATIO[slo.period]),
                f"avg_over_time({names.ERROR_RATIO[BASE_WINDOW]}{sel}[{slo.period}])",
                labels,
            )
        )
    return rules


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.strip().splitlines())


def metadata_rules(slo: SLO) -> list[dict[str, Any]]:
    labels, sel, budget = identity_labels(slo), selector(slo), number(slo.budget)
    return [
        _record(str(names.OBJECTIVE), f"vector({number(slo.objective_ratio)})", labels),
        _record(str(names.ERROR_BUDGET), f"vector({budget})", labels),
        _record(str(names.PERIOD_DAYS), f"vector({number(slo.period_seconds / 86400)})", labels),
        _record(str(names.BURN_RATE), f"{names.ERROR_RATIO[BASE_WINDOW]}{sel} / {budget}", labels),
        _record(str(names.PERIOD_BURN_RATE), f"{names.ERROR_RATIO[slo.period]}{sel} / {budget}", labels),
        _record(str(names.BUDGET_REMAINING), f"1 - {names.PERIOD_BURN_RATE}{sel}", labels),
    ]


@dataclass(frozen=True)
class TierAlert:
    """A burn-rate tier as generated for one SLO."""

    tier: Tier
    alert: Alert

    @property
    def labels(self) -> dict[str, str]:
        return {"severity": SEVERITY[self.tier.kind], "long_window": self.tier.long, "short_window": self.tier.short}


def tier_alerts(slo: SLO) -> list[TierAlert]:
    """The enabled tiers of the SLO, fastest first."""
    chosen = {"page": slo.alerting.page, "ticket": slo.alerting.ticket}
    return [TierAlert(t, chosen[t.kind]) for t in windows.tiers(slo.period) if not chosen[t.kind].disable]


def min_total(slo: SLO, window: str) -> float | None:
    """The guard on the long window's recorded total events: ``min_events`` in the query's unit."""
    if slo.alerting.min_events is None:
        return None
    assert isinstance(slo.sli, EventsSli)
    per_second = slo.sli.scale == "rate"
    return slo.alerting.min_events / windows.seconds(window) if per_second else slo.alerting.min_events


def burn_expr(slo: SLO, tier: Tier) -> str:
    sel, threshold = selector(slo), f"({number(tier.factor)} * {number(slo.budget)})"
    expr = (
        f"(\n  {names.ERROR_RATIO[tier.long]}{sel} > {threshold}\nand\n"
        f"  {names.ERROR_RATIO[tier.short]}{sel} > {threshold}\n)"
    )
    guard = min_total(slo, tier.long)
    if guard is not None:
        expr += f"\nand\n  {names.TOTAL_EVENTS[tier.long]}{sel} >= {number(round(guard, 12))}"
    return expr


def _what(slo: SLO) -> str:
    return slo.description.rstrip(".") if slo.description else f"the {slo.name} SLI"


def burn_annotations(slo: SLO, tier: Tier) -> dict[str, str]:
    spent = tier.factor * tier.long_seconds / slo.period_seconds
    exhausted = windows.humanize(slo.period_seconds / tier.factor)
    return {
        "summary": (
            f"{slo.service} {slo.name}: error budget burning {number(tier.factor)}x too fast "
            f"over {tier.long} and {tier.short}"
        ),
        "description": (
            f"{_what(slo)} ({number(slo.objective)}% over {slo.period}): the error ratio over the "
            f"last {tier.long} and {tier.short} is above {number(tier.factor)} times the "
            f"{number(slo.budget * 100)}% error budget. At this rate {spent:.0%} of the period's "
            f"budget goes every {tier.long}, and all of it in {exhausted}."
        ),
        "runbook_url": links.runbook_url(BURN_RUNBOOK),
        "dashboard_url": links.dashboard_url("slo"),
    }


def absent_expr(slo: SLO) -> str:
    if isinstance(slo.sli, EventsSli):
        return f"absent({names.TOTAL_EVENTS[BASE_WINDOW]}{selector(slo)})"
    metrics = sorted(metric_names(promql.at_window(slo.sli.error_ratio_query, BASE_WINDOW)))
    return "\nor\n".join(f"absent({name})" for name in metrics)


def absent_annotations(slo: SLO) -> dict[str, str]:
    return {
        "summary": f"{slo.service} {slo.name}: the SLI has no data",
        "description": (
            f"The {slo.name} SLO of {slo.service} has had no data for {slo.alerting.absent.for_}: its "
            "queries return nothing, so its error budget is not measured and its burn-rate alerts "
            "cannot fire. Check the scrape targets and the exporter behind the SLI."
        ),
        "runbook_url": links.runbook_url(ABSENT_RUNBOOK),
        "dashboard_url": links.dashboard_url("slo"),
    }


def _alert_rule(name: str, expr: str, alert: Alert, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if windows.seconds(alert.for_) > 0:
        rule["for"] = alert.for_
    rule["labels"] = dict(sorted(labels.items()))
    rule["annotations"] = dict(sorted(annotations.items()))
    return rule


def burn_alert_labels(slo: SLO, tier_alert: TierAlert) -> dict[str, str]:
    """Labels the rule adds (the series add service, slo and the spec's labels)."""
    return {**tier_alert.labels, **slo.alerting.labels, **tier_alert.alert.labels}


def burn_alert_annotations(slo: SLO, tier_alert: TierAlert) -> dict[str, str]:
    return {**burn_annotations(slo, tier_alert.tier), **slo.alerting.annotations, **tier_alert.alert.annotations}


def absent_alert_labels(slo: SLO) -> dict[str, str]:
    absent = slo.alerting.absent
    return {**identity_labels(slo), "severity": ABSENT_SEVERITY, **slo.alerting.labels, **absent.labels}


def absent_alert_annotations(slo: SLO) -> dict[str, str]:
    return {**absent_annotations(slo), **slo.alerting.annotations, **slo.alerting.absent.annotations}


def alert_rules(slo: SLO) -> list[dict[str, Any]]:
    rules = [
        _alert_rule(
            burn_alert_name(slo), burn_expr(slo, t.tier), t.alert,
            burn_alert_labels(slo, t), burn_alert_annotations(slo, t),
        )
        for t in tier_alerts(slo)
    ]
    if not slo.alerting.absent.disable:
        rules.append(
            _alert_rule(
                absent_alert_name(slo), absent_expr(slo), slo.alerting.absent,
                absent_alert_labels(slo), absent_alert_annotations(slo),
            )
        )
    return rules


def groups(slo: SLO) -> list[dict[str, Any]]:
    """The SLO's rule groups: one, in which each rule sees the ones before it at the same
    evaluation; or, when the spec gives each kind of rule its own interval (Sloth's
    ``interval``), three."""
    base = f"slo-{slo.service}-{slo.name}"
    parts = (
        ("sli", slo.intervals.sli, sli_rules(slo)),
        ("meta", slo.intervals.metadata, metadata_rules(slo)),
        ("alerts", slo.intervals.alert, alert_rules(slo)),
    )
    if not slo.intervals.split:
        group: dict[str, Any] = {"name": base}
        if slo.intervals.sli:
            group["interval"] = slo.intervals.sli
        group["rules"] = [rule for _, _, rules in parts for rule in rules]
        return [group]
    split = []
    for kind, interval, rules in parts:
        if not rules:
            continue
        group = {"name": f"{base}-{kind}"}
        if interval:
            group["interval"] = interval
        group["rules"] = rules
        split.append(group)
    return split


def rule_file(slos: list[SLO]) -> dict[str, Any]:
    """The rule file of one service: every group of its SLOs, in spec order."""
    return {"groups": [group for slo in slos for group in groups(slo)]}
