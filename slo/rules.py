"""Prometheus rules of an SLO: at most 17 recording rules and 3 alerts, whatever its period.

Recording rules (Sloth's 15, plus the two counted-event series that make the period exact):

- ``slo:sli_total_events:rate5m`` / ``slo:sli_error_events:rate5m``: the total and error queries
  over the base window (0 errors when the error query returns nothing);
- ``slo:sli_error:ratio_rate<w>`` for the Workbook's windows (5m, 30m, 1h, 2h, 6h, 1d, 3d): bad /
  total, 0 when there was no traffic (never NaN or Inf); and over the period;
- metadata: objective, error budget, ``slo:time_period:days``, current and period burn rates,
  budget remaining, and ``sloth_slo_info``.

Every series carries ``service``, ``slo``, Sloth's ``sloth_id``, ``sloth_service`` and
``sloth_slo`` and the spec's labels. The SLI's own labels (``sum by (service)``, or the ``job``,
``namespace``, ``service`` and ``pod`` of unaggregated kube-prometheus-stack series) are
aggregated away by design: an SLO is one error ratio, so its rules record one series and raise one
page and one ticket, and no label of the SLI can collide with the compiler's.

The period's ratio is not an ``increase()`` over 28 or 30 days of raw series (millions of
samples every evaluation), nor an average of 5-minute ratios (which weighs a quiet night like a
busy morning): it sums the recorded 5-minute bad and total events over the period and divides,
so every event weighs the same (docs/slo.md). Windows of two hours or more are summed the same
way (two recorded series, where Sloth reads every raw series of the SLI); the page's shorter
windows read the queries, so a total outage pages within a minute. Raw SLIs (an error ratio, no events) can only be
averaged over time, as Sloth does. Time slices record one sample per slice and count them.

Alerts: one page and one ticket alert, each the SRE Workbook's two tiers in one expression (one
alert instance per SLO and severity), and an alert for an absent SLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from medobs.core import links, site
from medobs.core.catalog import slo as names
from medobs.core.promql import metric_names
from slo import promql, windows
from slo.spec import SLO, Alert
from slo.templates import EventsSli, RawSli
from slo.windows import Tier

SEVERITY = {"page": "critical", "ticket": "warning"}
#: Windows from this many seconds on are summed from the recorded 5-minute events.
COUNTED_FROM = 2 * 3600
ABSENT_SEVERITY = "warning"
#: Runbooks shared by every SLO's alerts (alerts/runbooks/slo/), apart from the per-alert ones.
BURN_RUNBOOK = "slo/error-budget-burn"
ABSENT_RUNBOOK = "slo/sli-absent"


def number(value: Decimal | float) -> str:
    """A number as rule text: ``0.001``, ``14.4``, ``30`` (no float noise, no exponent)."""
    return format(Decimal(str(value)).normalize(), "f")


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").replace(".", "-").split("-"))


def burn_alert_name(slo: SLO) -> str:
    return slo.alerting.name or f"{camel(slo.service)}{camel(slo.name)}ErrorBudgetBurn"


def absent_alert_name(slo: SLO) -> str:
    return f"{camel(slo.service)}{camel(slo.name)}SLIAbsent"


def scrape_interval(slo: SLO) -> str:
    return slo.scrape_interval


def base_window(slo: SLO) -> str:
    return windows.base_window(scrape_interval(slo))


def sli_windows(slo: SLO) -> tuple[str, ...]:
    """Windows the SLI's error ratio is recorded over, shortest first."""
    return windows.sli_windows(scrape_interval(slo))


def tiers(slo: SLO) -> tuple[Tier, ...]:
    return windows.tiers(slo.period, scrape_interval(slo))


# --- identity ----------------------------------------------------------------------------------


def slo_id(slo: SLO, siblings: Sequence[SLO] = ()) -> str:
    """Sloth's id, ``service-name``; where another SLO of ``siblings`` has the same service and
    name (the same SLO per environment), the values of the spec labels that tell them apart are
    appended: ``shop-availability-prod``."""
    twins = [o for o in siblings if o is not slo and (o.service, o.name) == (slo.service, slo.name)]
    differing = sorted({k for o in twins for k in set(o.labels) | set(slo.labels) if o.labels.get(k) != slo.labels.get(k)})
    return "-".join([slo.service, slo.name, *(slo.labels[k] for k in differing if k in slo.labels)])


def slo_ids(slos: list[SLO]) -> list[str]:
    """The id of each SLO of one rule file, in order (see :func:`slo_id`)."""
    return [slo_id(slo, slos) for slo in slos]


def identity_labels(slo: SLO, ident: str | None = None) -> dict[str, str]:
    """Labels every series of the SLO carries: its spec labels, service, slo and Sloth's."""
    return {
        **slo.labels, "service": slo.service, "slo": slo.name,
        "sloth_id": ident or slo_id(slo), "sloth_service": slo.service, "sloth_slo": slo.name,
    }


def selector(slo: SLO, ident: str | None = None) -> str:
    """The selector of the SLO's series: service, slo and its id, which keeps the same SLO of two
    environments apart (and one without labels from them)."""
    return f'{{service="{slo.service}", slo="{slo.name}", sloth_id="{ident or slo_id(slo)}"}}'


# --- recording rules ---------------------------------------------------------------------------


def error_ratio(window: str) -> str:
    """The error-ratio series of a window: the catalog's, or one lengthened for a slow scrape."""
    return names.ERROR_RATIO[window].name if window in names.ERROR_RATIO else f"slo:sli_error:ratio_rate{window}"


def _record(name: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": dict(sorted(labels.items()))}


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.strip().splitlines())


def _ratio(bad: str, total: str) -> str:
    """bad / total, and 0 rather than NaN when total is 0."""
    return f"{bad}\n  / ({total} > 0)\nor\n  {total} * 0"


def _aggregate(query: str, window: str, how: str = "sum") -> str:
    """The SLI query over ``window``, its labels aggregated away."""
    return f"{how}(\n{_indent(promql.at_window(query, window), 2)}\n)"


def _is_slices(slo: SLO) -> bool:
    return isinstance(slo.sli, EventsSli) and slo.sli.slice_expr is not None


def total_series(slo: SLO, ident: str | None = None) -> str:
    """The recorded series whose absence means the SLI has no data: the base window's total
    events, or the time slices."""
    name = names.SLICE_ERROR if _is_slices(slo) else names.TOTAL_EVENTS
    return f"{name}{selector(slo, ident)}"


def _events_rules(slo: SLO, sli: EventsSli, ident: str | None) -> list[dict[str, Any]]:
    labels, sel, base = identity_labels(slo, ident), selector(slo, ident), base_window(slo)
    total, bad = f"{names.TOTAL_EVENTS}{sel}", f"{names.ERROR_EVENTS}{sel}"
    rules = [
        _record(str(names.TOTAL_EVENTS), _aggregate(sli.total_query, base), labels),
        _record(str(names.ERROR_EVENTS), f"{_aggregate(sli.error_query, base)}\nor on ()\n  {total} * 0", labels),
        _record(error_ratio(base), _ratio(bad, total), labels),
    ]
    for window in (*sli_windows(slo)[1:], slo.period):
        if counted_window(slo, window):
            # The recorded 5-minute events summed: two series, whatever the SLI's cardinality.
            ratio = f"sum_over_time({bad}[{window}])\n  / sum_over_time({total}[{window}])"
        else:
            # The page's short windows straight from the queries, as Sloth does.
            error, total_events = _aggregate(sli.error_query, window), _aggregate(sli.total_query, window)
            ratio = f"{error}\n  /\n{total_events}"
        # 0 / 0 (no traffic in the window) is dropped and falls back to 0 while the SLI has data.
        rules.append(_record(error_ratio(window), f"(\n{_indent(ratio, 2)}\n) >= 0\nor on ()\n  {total} * 0", labels))
    return rules


def counted_window(slo: SLO, window: str) -> bool:
    """Whether the error ratio over ``window`` is summed from the recorded base-window events: the
    period and windows of 2 hours or more of counter SLIs. Shorter windows (the page's, which must
    react within a minute) read the SLI's queries."""
    if not isinstance(slo.sli, EventsSli) or _is_slices(slo):
        return False
    return window == slo.period or windows.seconds(window) >= COUNTED_FROM


def _slice_rules(slo: SLO, sli: EventsSli, ident: str | None) -> list[dict[str, Any]]:
    """Time slices: each evaluation records one slice (1 bad, 0 good); windows count them."""
    assert sli.slice_expr is not None
    labels, sliced = identity_labels(slo, ident), total_series(slo, ident)
    rules = [_record(str(names.SLICE_ERROR), sli.slice_expr, labels)]
    for window in (*sli_windows(slo), slo.period):
        ratio = _ratio(f"sum_over_time({sliced}[{window}])", f"count_over_time({sliced}[{window}])")
        rules.append(_record(error_ratio(window), ratio, labels))
    return rules


def _raw_rules(slo: SLO, sli: RawSli, ident: str | None) -> list[dict[str, Any]]:
    """A raw ratio: the worst of the series the query returns; NaN (no traffic) is dropped."""
    labels, rules = identity_labels(slo, ident), []
    for window in sli_windows(slo):
        ratio = f"clamp_max(\n{_aggregate(sli.error_ratio_query, window, 'max')} >= 0,\n  1\n)"
        rules.append(_record(error_ratio(window), ratio, labels))
    base = f"{error_ratio(base_window(slo))}{selector(slo, ident)}"
    rules.append(_record(error_ratio(slo.period), f"avg_over_time({base}[{slo.period}])", labels))
    return rules


def sli_rules(slo: SLO, ident: str | None = None) -> list[dict[str, Any]]:
    if isinstance(slo.sli, EventsSli):
        return _slice_rules(slo, slo.sli, ident) if _is_slices(slo) else _events_rules(slo, slo.sli, ident)
    return _raw_rules(slo, slo.sli, ident)


def metadata_rules(slo: SLO, ident: str | None = None) -> list[dict[str, Any]]:
    labels, sel, budget = identity_labels(slo, ident), selector(slo, ident), number(slo.budget)
    info = {**labels, "sloth_spec": "prometheus/v1", "sloth_objective": number(slo.objective)}
    return [
        _record(str(names.OBJECTIVE), f"vector({number(slo.objective_ratio)})", labels),
        _record(str(names.ERROR_BUDGET), f"vector({budget})", labels),
        _record(str(names.PERIOD_DAYS), f"vector({number(slo.period_seconds / 86400)})", labels),
        _record(str(names.BURN_RATE), f"{error_ratio(base_window(slo))}{sel} / {budget}", labels),
        _record(str(names.PERIOD_BURN_RATE), f"{error_ratio(slo.period)}{sel} / {budget}", labels),
        _record(str(names.BUDGET_REMAINING), f"1 - {names.PERIOD_BURN_RATE}{sel}", labels),
        _record(str(names.INFO), "vector(1)", info),
    ]


# --- alerts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurnAlert:
    """The page or the ticket alert of an SLO: its two tiers in one expression."""

    kind: Literal["page", "ticket"]
    tiers: tuple[Tier, ...]
    alert: Alert

    @property
    def labels(self) -> dict[str, str]:
        return {"severity": SEVERITY[self.kind], "sloth_severity": self.kind}


def burn_alerts(slo: SLO) -> list[BurnAlert]:
    """The enabled burn-rate alerts of the SLO, page first."""
    chosen = {"page": slo.alerting.page, "ticket": slo.alerting.ticket}
    return [
        BurnAlert(kind, tuple(t for t in tiers(slo) if t.kind == kind), chosen[kind])  # type: ignore[arg-type]
        for kind in ("page", "ticket")
        if not chosen[kind].disable
    ]


def alerting_enabled(slo: SLO) -> bool:
    return bool(burn_alerts(slo))


def min_total(slo: SLO, tier: Tier) -> float | None:
    """The ``min_events`` guard on the long window, as the rule compares it: a count of time slices,
    or the average of the recorded base-window totals over the long window (events per second for
    rate() queries, events per base window for counting ones)."""
    if slo.alerting.min_events is None:
        return None
    assert isinstance(slo.sli, EventsSli)
    if _is_slices(slo):
        return slo.alerting.min_events
    if slo.sli.scale == "rate":
        return slo.alerting.min_events / tier.long_seconds
    return slo.alerting.min_events * windows.seconds(base_window(slo)) / tier.long_seconds


def guard_expr(slo: SLO, tier: Tier, ident: str | None = None) -> str | None:
    guard = min_total(slo, tier)
    if guard is None:
        return None
    counted = "count_over_time" if _is_slices(slo) else "avg_over_time"
    return f"{counted}({total_series(slo, ident)}[{tier.long}]) >= {number(round(guard, 12))}"


def tier_expr(slo: SLO, tier: Tier, ident: str | None = None) -> str:
    sel, threshold = selector(slo, ident), f"({number(tier.factor)} * {number(slo.budget)})"
    parts = [f"{error_ratio(w)}{sel} > {threshold}" for w in (tier.long, tier.short)]
    guard = guard_expr(slo, tier, ident)
    if guard is not None:
        parts.append(guard)
    return "(\n" + "\nand\n".join(_indent(p, 2) for p in parts) + "\n)"


def burn_expr(slo: SLO, burn: BurnAlert, ident: str | None = None) -> str:
    return "\nor\n".join(tier_expr(slo, tier, ident) for tier in burn.tiers)


def _what(slo: SLO) -> str:
    return slo.description.rstrip(".") if slo.description else f"the {slo.name} SLI"


def burn_annotations(slo: SLO, burn: BurnAlert) -> dict[str, str]:
    conditions = " or ".join(f"{number(t.factor)}x over {t.long} and {t.short}" for t in burn.tiers)
    shares = " or ".join(
        f"{t.budget_share:.0%} in {t.long} (all of it in {windows.humanize(slo.period_seconds / t.factor)})"
        for t in burn.tiers
    )
    return {
        "summary": f"{slo.service} {slo.name}: error budget burning too fast ({burn.kind})",
        "description": (
            f"{_what(slo)} ({number(slo.objective)}% over {slo.period}): the error ratio is above the "
            f"{number(slo.budget * 100)}% error budget times {conditions}. At this rate the period's "
            f"budget goes {shares}."
        ),
        "runbook_url": links.runbook_url(BURN_RUNBOOK),
        "dashboard_url": links.dashboard_url("slo"),
    }


def absent_expr(slo: SLO, ident: str | None = None) -> str:
    if isinstance(slo.sli, EventsSli):
        return f"absent({total_series(slo, ident)})"
    metrics = sorted(metric_names(promql.at_window(slo.sli.error_ratio_query, base_window(slo))))
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


def namespace_label(slo: SLO) -> dict[str, str]:
    """``namespace``, which kube-prometheus-stack's inhibitions and AlertmanagerConfig matchers
    read: the spec's, or the site's."""
    return {"namespace": slo.labels.get("namespace", site.current().namespace)}


def burn_alert_labels(slo: SLO, burn: BurnAlert) -> dict[str, str]:
    """Labels the rule adds (the series bring the SLO's identity)."""
    return {**namespace_label(slo), **burn.labels, **slo.alerting.labels, **burn.alert.labels}


def burn_alert_annotations(slo: SLO, burn: BurnAlert) -> dict[str, str]:
    return {**burn_annotations(slo, burn), **slo.alerting.annotations, **burn.alert.annotations}


def absent_alert_labels(slo: SLO, ident: str | None = None) -> dict[str, str]:
    """The SLO's identity, a ticket's severity and the spec's ticket labels."""
    return {
        **identity_labels(slo, ident), **namespace_label(slo), "severity": ABSENT_SEVERITY, "sloth_severity": "ticket",
        **slo.alerting.labels, **slo.alerting.ticket.labels, **slo.alerting.absent.labels,
    }


def absent_alert_annotations(slo: SLO) -> dict[str, str]:
    return {**absent_annotations(slo), **slo.alerting.annotations, **slo.alerting.absent.annotations}


def has_absent_alert(slo: SLO) -> bool:
    """No absent alert where the spec turns alerting off (page and ticket disabled)."""
    return alerting_enabled(slo) and not slo.alerting.absent.disable


def alert_rules(slo: SLO, ident: str | None = None) -> list[dict[str, Any]]:
    rules = [
        _alert_rule(
            burn_alert_name(slo), burn_expr(slo, burn, ident), burn.alert,
            burn_alert_labels(slo, burn), burn_alert_annotations(slo, burn),
        )
        for burn in burn_alerts(slo)
    ]
    if has_absent_alert(slo):
        rules.append(
            _alert_rule(
                absent_alert_name(slo), absent_expr(slo, ident), slo.alerting.absent,
                absent_alert_labels(slo, ident), absent_alert_annotations(slo),
            )
        )
    return rules


def groups(slo: SLO, ident: str | None = None) -> list[dict[str, Any]]:
    """The SLO's rule groups: one, in which each rule sees the ones before it at the same
    evaluation; or, when the spec gives each kind of rule its own interval (Sloth's
    ``interval``), three."""
    base = f"slo-{ident or slo_id(slo)}"
    parts = (
        ("sli", slo.intervals.sli, sli_rules(slo, ident)),
        ("meta", slo.intervals.metadata, metadata_rules(slo, ident)),
        ("alerts", slo.intervals.alert, alert_rules(slo, ident)),
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
    return {"groups": [group for slo, ident in zip(slos, slo_ids(slos)) for group in groups(slo, ident)]}
