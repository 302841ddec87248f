"""``medobs slo report``: how each SLO did over a window, read from Prometheus.

An SLI over counters (``rate()`` / ``increase()``: availability, latency, counters) is counted
step by step from the counters' samples, so every event Prometheus scraped in the window counts
exactly once: nothing is extrapolated to the window's edges, a series that appears in the window
(the first 500 of a route) counts from zero, and adjacent windows add up. Other SLIs (time
slices, raw ratios) evaluate their own queries once over the whole window, at its end. The alerts
that fired come from Prometheus's ``ALERTS`` series; the burn-down divides the window into equal
tiles and adds up their bad events. The JSON form is documented field by field in docs/slo.md
(``schema`` ``medobs.slo.report/v1``) and only grows.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from medobs import UserError
from medobs.core.catalog import platform
from medobs.core.prometheus import Prometheus
from slo import promql, rules, windows
from slo.spec import SLO
from slo.templates import EventsSli

SCHEMA = "medobs.slo.report/v1"
AT_RISK = 0.75  # share of the budget consumed from which a met SLO is reported at risk
BURN_DOWN_POINTS = 120
MAX_RANGE_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series
STEPS_PER_TILE = 10


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    label: str  # "30d" or "2026-10"
    complete: bool = True  # False for a month still in progress

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start": iso(self.start),
            "end": iso(self.end),
            "seconds": self.seconds,
            "complete": self.complete,
        }


def iso(moment: datetime | float) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """RFC 3339 (``2026-10-31T00:00:00Z``) or Unix seconds."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--end {text!r}: expected a time like 2026-10-31T00:00:00Z or Unix seconds") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def month_window(month: str, now: datetime) -> Window:
    match = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise UserError(f"--month {month!r}: expected a month like 2026-10")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = start + timedelta(days=calendar.monthrange(year, number)[1])
    if start >= now:
        raise UserError(f"--month {month}: the month has not started yet")
    return Window(start, min(end, now), month, complete=end <= now)


def period_window(period: str, end: datetime) -> Window:
    try:
        length = windows.seconds(period)
    except ValueError as error:
        raise UserError(f"--period: {error}") from None
    return Window(end - timedelta(seconds=length), end, period)



def total(result: list[dict[str, Any]]) -> float | None:
    """The sum of an instant vector's values, ignoring NaN; None when it is empty."""
    values = [float(item["value"][1]) for item in result]
    values = [v for v in values if v == v]
    return sum(values) if values else None


# --- one SLO -----------------------------------------------------------------------------------


@dataclass
class AlertEpisodes:
    alertname: str
    labels: dict[str, str]
    first_fired: str
    last_fired: str
    firing_seconds: int
    episodes: int


@dataclass
class SloResult:
    service: str
    slo: str
    description: str
    window: dict[str, Any]
    objective: float
    sli: float | None
    error_ratio: float | None
    events: dict[str, float] | None
    error_budget: dict[str, float | None]
    burn_rate: float | None
    alerts: list[AlertEpisodes]
    verdict: str
    burn_down: list[dict[str, Any]] = field(default_factory=list)


def _events_factor(slo: SLO, seconds: int) -> float | None:
    """What turns the SLI queries' values over ``seconds`` into counts of events."""
    if not isinstance(slo.sli, EventsSli) or slo.sli.scale is None:
        return None
    return float(seconds) if slo.sli.scale == "rate" else 1.0


def _verdict(consumed: float | None) -> str:
    if consumed is None:
        return "no_data"
    if consumed > 1:
        return "breached"
    return "at_risk" if consumed >= AT_RISK else "met"


def _values(prometheus: Prometheus, query: str, window: Window, step: int) -> dict[float, float]:
    """A query over steps of ``step`` seconds: step end -> summed value."""
    points: dict[float, float] = {}
    for series in prometheus.query_range(query, window.start.timestamp() + step, window.end.timestamp(), step):
        for moment, value in series["values"]:
            number = float(value)
            if number == number:
                points[float(moment)] = points.get(float(moment), 0.0) + number
    return points


def tile_seconds(window_seconds: int) -> int:
    """A tile length that divides the window into at most BURN_DOWN_POINTS whole-minute tiles."""
    for count in range(BURN_DOWN_POINTS, 0, -1):
        if window_seconds % count == 0 and (window_seconds // count) % 60 == 0:
            return window_seconds // count
    return window_seconds


def count_step(window_seconds: int) -> int:
    """The step in which counters' events are counted: a divisor of the burn-down's tile (tiles
    add up whole steps), at least a minute, and about STEPS_PER_TILE per tile (each step costs
    Prometheus the same whatever its length; a counter reset loses at most one step of a series)."""
    tile = tile_seconds(window_seconds)
    least = max(60, math.ceil(tile / STEPS_PER_TILE))
    return next((step for step in range(least, tile) if tile % step == 0), tile)


@dataclass(frozen=True)
class Events:
    """An SLI's bad and total events over the window and per step (step end -> value), in the
    queries' unit; ``factor`` turns that unit into events (None: the values are not events)."""

    bad: float
    total: float
    bad_steps: dict[float, float]
    total_steps: dict[float, float]
    step: int
    factor: float | None


def counted_events(slo: SLO, prometheus: Prometheus, window: Window) -> Events | None:
    """The events of an SLI that takes ``rate()`` or ``increase()`` of counters, counted step by
    step from the counters' samples (:func:`promql.step_events`): every event Prometheus scraped
    in the window counts once, a series born in the window from zero, and nothing is
    extrapolated to the window's edges. None for other SLIs."""
    if not isinstance(slo.sli, EventsSli):
        return None
    step = count_step(window.seconds)
    bad_query, all_query = (promql.step_events(q, windows.duration(step)) for q in (slo.sli.error_query, slo.sli.total_query))
    if bad_query is None or all_query is None:
        return None
    bad, all_ = _values(prometheus, bad_query, window, step), _values(prometheus, all_query, window, step)
    return Events(sum(bad.values()), sum(all_.values()), bad, all_, step, factor=1.0)


def window_events(slo: SLO, prometheus: Prometheus, window: Window) -> Events:
    """Other SLIs (time slices, ``irate``, raw ratios): the queries evaluated once over the whole
    window at its end, and over each burn-down tile. A raw SLI's ratio counts as bad "events" out
    of one per tile."""
    at, span, tile = window.end.timestamp(), windows.duration(window.seconds), tile_seconds(window.seconds)
    in_tiles = windows.duration(tile)
    if isinstance(slo.sli, EventsSli):
        all_events = total(prometheus.query(promql.at_window(slo.sli.total_query, span), at)) or 0.0
        bad_events = total(prometheus.query(promql.at_window(slo.sli.error_query, span), at)) or 0.0
        bad = _values(prometheus, promql.at_window(slo.sli.error_query, in_tiles), window, tile)
        all_ = _values(prometheus, promql.at_window(slo.sli.total_query, in_tiles), window, tile)
        return Events(bad_events, all_events, bad, all_, tile, _events_factor(slo, window.seconds))
    found = prometheus.query(promql.at_window(slo.sli.error_ratio_query, span), at)
    values = [float(item["value"][1]) for item in found if float(item["value"][1]) == float(item["value"][1])]
    bad = _values(prometheus, promql.at_window(slo.sli.error_ratio_query, in_tiles), window, tile)
    ratio = sum(values) / len(values) if values else 0.0
    return Events(ratio, 1.0 if values else 0.0, bad, {moment: 1.0 for moment in bad}, tile, factor=None)


def burn_down(budget: float, events: Events, window: Window) -> list[dict[str, Any]]:
    """Share of the window's error budget left at the end of each tile (1 at the start, the
    report's remaining_ratio at the end when the steps are counted events)."""
    allowed = budget * sum(events.total_steps.values())
    if allowed <= 0:
        return []
    tile, start = tile_seconds(window.seconds), window.start.timestamp()
    steps_per_tile = tile // events.step
    spent_in_tile = [0.0] * (window.seconds // tile + 1)
    for moment, bad in events.bad_steps.items():
        index = -(-round((moment - start) / events.step) // steps_per_tile)  # the tile the step ends in
        spent_in_tile[min(max(index, 1), len(spent_in_tile) - 1)] += bad
    points, spent = [{"time": iso(window.start), "remaining_ratio": 1.0}], 0.0
    for index in range(1, len(spent_in_tile)):
        spent += spent_in_tile[index]
        points.append({"time": iso(start + index * tile), "remaining_ratio": 1 - spent / allowed})
    return points


def fired_alerts(slo: SLO, prometheus: Prometheus, window: Window, ident: str | None = None) -> list[AlertEpisodes]:
    """The SLO's alerts (``ident``: its id among the SLOs of its service) that fired in the window."""
    step = max(1, math.ceil(window.seconds / MAX_RANGE_POINTS))
    # The SLO's selector holds its id: the same SLO in another environment is not counted.
    query = f'{platform.ALERTS.name}{{alertstate="firing", {rules.selector(slo, ident)[1:]}'
    found = []
    for series in prometheus.query_range(query, window.start.timestamp(), window.end.timestamp(), step):
        labels = {k: v for k, v in series["metric"].items() if k not in ("__name__", "alertstate")}
        moments = [float(t) for t, _ in series["values"]]
        if not moments:
            continue
        episodes = 1 + sum(1 for a, b in zip(moments, moments[1:]) if b - a > 1.5 * step)
        found.append(AlertEpisodes(
            alertname=labels.pop("alertname", ""),
            labels=dict(sorted(labels.items())),
            first_fired=iso(moments[0]),
            last_fired=iso(moments[-1]),
            firing_seconds=len(moments) * step,
            episodes=episodes,
        ))
    return sorted(found, key=lambda a: (a.first_fired, a.alertname, sorted(a.labels.items())))


def evaluate(slo: SLO, prometheus: Prometheus, window: Window, ident: str | None = None) -> SloResult:
    budget = float(slo.budget)
    found = counted_events(slo, prometheus, window) or window_events(slo, prometheus, window)
    ratio = found.bad / found.total if found.total else None
    events = None
    if found.factor is not None and ratio is not None:
        events = {"good": (found.total - found.bad) * found.factor, "bad": found.bad * found.factor,
                  "total": found.total * found.factor}
    consumed = ratio / budget if ratio is not None else None
    allowed = budget * events["total"] if events else None
    return SloResult(
        service=slo.service,
        slo=slo.name,
        description=slo.description,
        window=window.as_json(),
        objective=float(slo.objective_ratio),
        sli=1 - ratio if ratio is not None else None,
        error_ratio=ratio,
        events=events,
        error_budget={
            "ratio": budget,
            "allowed_events": allowed,
            "consumed_events": events["bad"] if events else None,
            "remaining_events": allowed - events["bad"] if events and allowed is not None else None,
            "consumed_ratio": consumed,
            "remaining_ratio": 1 - consumed if consumed is not None else None,
        },
        burn_rate=consumed,
        alerts=fired_alerts(slo, prometheus, window, ident),
        verdict=_verdict(consumed),
        burn_down=burn_down(budget, found, window) if consumed is not None else [],
    )


def report(slos: list[SLO], prometheus: Prometheus, *, period: str | None, month: str | None, end: datetime) -> dict[str, Any]:
    """The whole report, as the JSON form. ``end``: the end of a --period window, or now for
    --month (a month in progress ends now)."""
    results = []
    for slo in slos:
        window = month_window(month, end) if month else period_window(period or slo.period, end)
        ident = rules.slo_id(slo, [other for other in slos if other.service == slo.service])
        results.append(asdict(evaluate(slo, prometheus, window, ident)))
    last = month_window(month, end).end if month else end
    return {
        "schema": SCHEMA,
        "prometheus": prometheus.shown,
        "month": month,
        "period": None if month else period,
        "end": iso(last),
        "slos": results,
    }
