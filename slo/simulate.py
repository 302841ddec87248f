"""What the generated rules must do on a known timeline, minute by minute, as Prometheus computes it.

A :class:`Timeline` says, for each minute, how many events happened and what share was bad (or,
for time slices, whether the minute was bad). :class:`Simulation` derives exactly what the SLO's
recording rules hold at each evaluation and which alerts fire, with Prometheus's semantics:
ranges include both ends, ``rate()`` needs two samples, a counter reset is handled by ``rate()``,
an alert with ``for`` fires once its condition has held that long, evaluations every minute.
Exact fractions are used; a value that lands on an alert threshold is reported as ambiguous so
that the tests never depend on float rounding. A window's events are the difference of two running
sums, so simulating a timeline takes time linear in its length.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache, cached_property
from typing import Literal

from slo import rules, windows
from slo.spec import SLO
from slo.templates import EventsSli, SliceInputs

Kind = Literal["counters", "slices", "raw"]
State = Literal["inactive", "pending", "firing", "unknown"]


@dataclass(frozen=True)
class Phase:
    minutes: int
    share: Fraction  # bad share of the minute's events (of the minute itself, for time slices)
    traffic: Fraction = Fraction(600)  # events a minute; 0: series present but idle
    reset: bool = False  # counters restart (a pod restart) at the phase's first minute


@dataclass(frozen=True)
class Timeline:
    phases: tuple[Phase, ...]
    present: bool = True  # False: the SLI's series do not exist at all

    @cached_property
    def minutes(self) -> int:
        """The last minute; samples are taken at minutes 0..minutes."""
        return sum(p.minutes for p in self.phases)

    @cached_property
    def per_minute(self) -> list[Phase]:
        """The phase of each minute 0..minutes (minute m's events end at sample m)."""
        out = [self.phases[0]]
        for phase in self.phases:
            out += [phase] * phase.minutes
        return out

    @cached_property
    def resets(self) -> set[int]:
        start, found = 1, set()
        for phase in self.phases:
            if phase.reset:
                found.add(start)
            start += phase.minutes
        return found

    def bad_and_total(self, minute: int) -> tuple[Fraction, Fraction]:
        """Counter increments during the minute ending at sample ``minute`` (none at 0)."""
        if minute == 0:
            return Fraction(0), Fraction(0)
        phase = self.per_minute[minute]
        return phase.traffic * phase.share, phase.traffic

    @cached_property
    def cumulative(self) -> list[tuple[Fraction, Fraction]]:
        """Counter increments summed over minutes 0..m, for each m: a window's events in O(1)."""
        bad, total, out = Fraction(0), Fraction(0), []
        for minute in range(self.minutes + 1):
            step_bad, step_total = self.bad_and_total(minute)
            bad, total = bad + step_bad, total + step_total
            out.append((bad, total))
        return out

    @cached_property
    def bad_slices_before(self) -> list[int]:
        """How many of the minutes before each index (0..minutes+1) were bad slices."""
        out = [0]
        for bad in self.bad_slices:
            out.append(out[-1] + (1 if bad else 0))
        return out

    @cached_property
    def bad_slices(self) -> list[bool | None]:
        """Per minute: a bad slice, a good one, or None (no gauge: an idle, empty queue)."""
        accumulated, out = Fraction(0), []
        for phase in self.per_minute:
            if phase.traffic == 0:
                out.append(None)
                continue
            accumulated += phase.share
            out.append(accumulated >= 1)
            if accumulated >= 1:
                accumulated -= 1
        return out


def kind_of(slo: SLO) -> Kind:
    """How the SLO's generated tests feed it: counters, time slices, or a raw ratio."""
    if not isinstance(slo.sli, EventsSli):
        return "raw"
    return "slices" if isinstance(slo.sli.inputs, SliceInputs) else "counters"


class Simulation:
    """The recorded values and alert states of ``slo`` over ``timeline``."""

    def __init__(self, slo: SLO, timeline: Timeline, kind: Kind):
        self.slo, self.timeline, self.kind = slo, timeline, kind
        self._events: dict[tuple[int, str], tuple[Fraction, Fraction] | None] = {}

    # --- recorded series -----------------------------------------------------------------

    def events(self, t: int, window: str) -> tuple[Fraction, Fraction] | None:
        """(bad, total) events in the window ending at minute ``t``; None when nothing is recorded."""
        key = (t, window)
        if key not in self._events:
            self._events[key] = self._count(t, _minutes(window))
        return self._events[key]

    def _count(self, t: int, minutes: int) -> tuple[Fraction, Fraction] | None:
        if not self.timeline.present:
            return None
        if self.kind == "slices":
            before = self.timeline.bad_slices_before
            start, end = min(max(0, t - minutes), len(before) - 1), min(t + 1, len(before) - 1)
            return Fraction(before[end] - before[start]), Fraction(end - start)
        if t == 0:  # rate() needs two samples
            return None
        cumulative = self.timeline.cumulative
        (bad_end, total_end), (bad_start, total_start) = cumulative[t], cumulative[max(0, t - minutes)]
        return bad_end - bad_start, total_end - total_start

    def ratio(self, t: int, window: str) -> Fraction | None:
        """``slo:sli_error:ratio_rate<window>`` at minute ``t`` (None: no sample)."""
        if window == self.slo.period:
            return self.period_ratio(t)
        counted = self.events(t, window)
        if counted is None:
            return None
        bad, total = counted
        if total == 0:
            return None if self.kind == "raw" else Fraction(0)  # a raw ratio's NaN is dropped
        return bad / total

    def total_in_query_unit(self, t: int, window: str) -> Fraction | None:
        counted = self.events(t, window)
        if counted is None:
            return None
        per_second = self.kind != "slices"
        return counted[1] / _seconds(window) if per_second else counted[1]

    def period_ratio(self, t: int) -> Fraction | None:
        span = range(max(0, t - self.slo.period_seconds // 60), t + 1)
        if self.kind == "raw":
            ratios = [r for s in span if (r := self.ratio(s, rules.BASE_WINDOW)) is not None]
            return sum(ratios, Fraction(0)) / len(ratios) if ratios else None
        recorded = [e for s in span if (e := self.events(s, rules.BASE_WINDOW)) is not None]
        if not recorded:
            return None
        total = sum((n for _, n in recorded), Fraction(0))
        return sum((b for b, _ in recorded), Fraction(0)) / total if total else Fraction(0)

    # --- alerts --------------------------------------------------------------------------

    @staticmethod
    def _above(value: Fraction | None, threshold: Fraction, margin: Fraction) -> bool | None:
        if value is None:
            return False
        if abs(value - threshold) <= margin:
            return None
        return value > threshold

    @cached_property
    def _limits(self) -> dict[windows.Tier, tuple[Fraction, Fraction, Fraction | None]]:
        """Per tier: the burn threshold, the margin within which a ratio counts as on it, and the
        ``min_events`` guard as the rule writes it (None: no guard)."""
        limits = {}
        for tier in windows.tiers(self.slo.period):
            threshold = Fraction(str(tier.factor)) * Fraction(self.slo.budget)
            guard = rules.min_total(self.slo, tier.long)
            limit = None if guard is None else Fraction(rules.number(round(guard, 12)))
            limits[tier] = threshold, threshold * Fraction(1, 10**9), limit
        return limits

    def burn_condition(self, t: int, tier_alert: rules.TierAlert) -> bool | None:
        tier = tier_alert.tier
        threshold, margin, limit = self._limits[tier]
        parts = [
            self._above(self.ratio(t, tier.long), threshold, margin),
            self._above(self.ratio(t, tier.short), threshold, margin),
        ]
        if limit is not None:
            total = self.total_in_query_unit(t, tier.long)
            parts.append(None if total is not None and total == limit else total is not None and total > limit)
        if False in parts:
            return False
        return None if None in parts else True

    def absent_condition(self, t: int) -> bool:
        if self.kind == "raw":
            return not self.timeline.present
        return self.events(t, rules.BASE_WINDOW) is None

    @cached_property
    def states(self) -> dict[str, list[State]]:
        """Per alert (``tier index`` as text, or ``absent``), the state after each evaluation."""
        conditions: dict[str, tuple[int, list[bool | None]]] = {}
        for index, tier_alert in enumerate(rules.tier_alerts(self.slo)):
            conditions[str(index)] = (
                windows.seconds(tier_alert.alert.for_) // 60,
                [self.burn_condition(t, tier_alert) for t in range(self.timeline.minutes + 1)],
            )
        if not self.slo.alerting.absent.disable:
            conditions["absent"] = (
                windows.seconds(self.slo.alerting.absent.for_) // 60,
                [self.absent_condition(t) for t in range(self.timeline.minutes + 1)],
            )
        return {key: _states(hold, values) for key, (hold, values) in conditions.items()}


_seconds = cache(windows.seconds)


def _minutes(window: str) -> int:
    """Whole minutes of a window (evaluations are a minute apart)."""
    return _seconds(window) // 60


def _states(hold: int, conditions: list[bool | None]) -> list[State]:
    """Prometheus's alert states given the condition at each evaluation (None: on the threshold,
    either way) and ``for`` in minutes."""
    states: list[State] = []
    earliest: int | None = None  # start of the current run if the unsure evaluations were true
    latest: int | None = None  # ... and if they were false
    for t, condition in enumerate(conditions):
        if condition is False:
            earliest = latest = None
            states.append("inactive")
            continue
        earliest = t if earliest is None else earliest
        if condition is None:
            latest = None
            states.append("unknown")
            continue
        latest = t if latest is None else latest
        if t - latest >= hold:
            states.append("firing")
        else:
            states.append("pending" if t - earliest < hold else "unknown")
    return states
