"""What the generated rules must do on a known timeline, minute by minute, as Prometheus computes it.

A :class:`Timeline` says, for each minute, how many events happened and what share was bad (or,
for time slices, whether the minute was bad). :class:`Simulation` derives what the SLO's
recording rules hold at each evaluation and which alerts fire, with Prometheus 2's semantics:
ranges include both ends, ``rate()`` needs two samples, a counter reset is handled by ``rate()``,
an alert with ``for`` fires once its condition has held that long, evaluations every minute.

Floats, not fractions (a thousand SLOs compile in seconds): every window is the difference of
two running sums, so simulating a timeline takes time linear in its length, and a value within a
billionth of an alert threshold is reported as ambiguous so that the tests never depend on
rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from itertools import accumulate
from typing import Literal

from slo import rules, windows
from slo.spec import SLO
from slo.templates import EventsSli, SliceInputs

Kind = Literal["counters", "slices", "raw"]
State = Literal["inactive", "pending", "firing", "unknown"]
#: Relative distance from a threshold within which a value counts as on it.
MARGIN = 1e-9


@dataclass(frozen=True)
class Phase:
    minutes: int
    share: float  # bad share of the minute's events (of the minute itself, for time slices)
    traffic: float = 600.0  # events a minute; 0: series present but idle
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

    def bad_and_total(self, minute: int) -> tuple[float, float]:
        """Counter increments during the minute ending at sample ``minute`` (none at 0)."""
        if minute == 0:
            return 0.0, 0.0
        phase = self.per_minute[minute]
        return phase.traffic * phase.share, phase.traffic

    @cached_property
    def cumulative(self) -> tuple[list[float], list[float]]:
        """Bad and total counter increments summed over minutes 0..m, for each m."""
        steps = [self.bad_and_total(m) for m in range(self.minutes + 1)]
        return list(accumulate(b for b, _ in steps)), list(accumulate(t for _, t in steps))

    @cached_property
    def bad_slices(self) -> list[bool | None]:
        """Per minute: a bad slice, a good one, or None (no gauge: an idle, empty queue)."""
        accumulated, out = 0.0, []
        for phase in self.per_minute:
            if phase.traffic == 0:
                out.append(None)
                continue
            accumulated += phase.share
            out.append(accumulated >= 1)
            if accumulated >= 1:
                accumulated -= 1
        return out

    @cached_property
    def bad_slices_before(self) -> list[int]:
        """How many of the minutes before each index (0..minutes+1) were bad slices."""
        return [0, *accumulate(1 if bad else 0 for bad in self.bad_slices)]


def kind_of(slo: SLO) -> Kind:
    """How the SLO's generated tests feed it: counters, time slices, or a raw ratio."""
    if not isinstance(slo.sli, EventsSli):
        return "raw"
    return "slices" if isinstance(slo.sli.inputs, SliceInputs) else "counters"


Counted = tuple[float, float] | None


class Simulation:
    """The recorded values and alert states of ``slo`` over ``timeline``."""

    def __init__(self, slo: SLO, timeline: Timeline, kind: Kind):
        self.slo, self.timeline, self.kind = slo, timeline, kind
        self.base = rules.base_window(slo)

    # --- recorded series -----------------------------------------------------------------

    def events(self, t: int, window: str) -> Counted:
        """(bad, total) events in the window ending at minute ``t``; None when nothing is recorded."""
        if not self.timeline.present:
            return None
        minutes = _minutes(window)
        if self.kind == "slices":
            before = self.timeline.bad_slices_before
            start, end = min(max(0, t - minutes), len(before) - 1), min(t + 1, len(before) - 1)
            return float(before[end] - before[start]), float(end - start)
        if t == 0:  # rate() needs two samples
            return None
        bad, total = self.timeline.cumulative
        start = max(0, t - minutes)
        return bad[t] - bad[start], total[t] - total[start]

    def ratio(self, t: int, window: str) -> float | None:
        """``slo:sli_error:ratio_rate<window>`` at minute ``t`` (None: no sample)."""
        if rules.counted_window(self.slo, window) or window == self.slo.period and self.kind == "raw":
            return self.summed_ratio(t, window)
        counted = self.events(t, window)
        if counted is None:
            return None
        bad, total = counted
        if total == 0:
            return None if self.kind == "raw" else 0.0  # a raw ratio's NaN is dropped
        return bad / total

    @cached_property
    def _base_sums(self) -> tuple[list[float], list[float], list[int]]:
        """Running sums over minutes of the base window's recorded values: bad events (the ratio,
        for raw SLIs), total events, and how many minutes had a sample."""
        bad, total, count = [0.0], [0.0], [0]
        for t in range(self.timeline.minutes + 1):
            if self.kind == "raw":
                ratio = self.ratio(t, self.base)
                counted = None if ratio is None else (ratio, 1.0)
            else:
                counted = self.events(t, self.base)
            bad.append(bad[-1] + (counted[0] if counted else 0.0))
            total.append(total[-1] + (counted[1] if counted else 0.0))
            count.append(count[-1] + (1 if counted else 0))
        return bad, total, count

    def _over_base(self, t: int, minutes: int) -> tuple[float, float, int]:
        """Sums of the recorded base-window values over samples t-minutes..t."""
        bad, total, count = self._base_sums
        start = max(0, t - minutes)
        return bad[t + 1] - bad[start], total[t + 1] - total[start], count[t + 1] - count[start]

    def summed_ratio(self, t: int, window: str) -> float | None:
        """The ratio summed (averaged, for raw SLIs) from the recorded base-window values."""
        bad, total, samples = self._over_base(t, _minutes(window))
        if not samples:
            return None
        if self.kind == "raw":
            return bad / samples  # the average of the recorded ratios
        return bad / total if total else 0.0

    def guard_value(self, t: int, tier: windows.Tier) -> float | None:
        """What the ``min_events`` guard compares: time slices in the long window, or the average
        recorded base-window total (per second for rate() SLIs)."""
        if self.kind == "slices":
            counted = self.events(t, tier.long)
            return None if counted is None else counted[1]
        _, total, samples = self._over_base(t, _minutes(tier.long))
        if not samples:
            return None
        per_second = self.slo.sli.scale == "rate"  # type: ignore[union-attr]
        return total / samples / (_seconds(self.base) if per_second else 1)

    # --- alerts --------------------------------------------------------------------------

    @staticmethod
    def _above(value: float | None, threshold: float) -> bool | None:
        """value >= / > threshold, None when within the margin either way."""
        if value is None:
            return False
        if abs(value - threshold) <= max(abs(threshold), 1e-12) * MARGIN:
            return None
        return value > threshold

    @cached_property
    def _limits(self) -> dict[windows.Tier, tuple[float, float | None]]:
        """Per tier: the burn threshold and the ``min_events`` guard, as the rules write them."""
        limits = {}
        for tier in rules.tiers(self.slo):
            guard = rules.min_total(self.slo, tier)
            limit = None if guard is None else float(rules.number(round(guard, 12)))
            limits[tier] = float(rules.number(tier.factor)) * float(self.slo.budget), limit
        return limits

    def tier_condition(self, t: int, tier: windows.Tier) -> bool | None:
        threshold, limit = self._limits[tier]
        parts = [self._above(self.ratio(t, tier.long), threshold)]
        if parts[0] is False:  # most minutes of most tests: decided without the rest
            return False
        parts.append(self._above(self.ratio(t, tier.short), threshold))
        if limit is not None:
            value = self.guard_value(t, tier)
            parts.append(False if value is None else self._above(value, limit) if value != limit else True)
        return _all(parts)

    def burn_condition(self, t: int, burn: rules.BurnAlert) -> bool | None:
        parts = []
        for tier in burn.tiers:
            parts.append(self.tier_condition(t, tier))
            if parts[-1] is True:
                return True
        return _any(parts)

    def absent_condition(self, t: int) -> bool:
        if self.kind == "raw":
            return not self.timeline.present
        return self.events(t, self.base) is None

    @cached_property
    def states(self) -> dict[str, list[State]]:
        """Per alert (``page``, ``ticket``, ``absent``), the state after each evaluation."""
        span = range(self.timeline.minutes + 1)
        conditions: dict[str, tuple[int, list[bool | None]]] = {}
        for burn in rules.burn_alerts(self.slo):
            conditions[burn.kind] = (_minutes(burn.alert.for_), [self.burn_condition(t, burn) for t in span])
        if rules.has_absent_alert(self.slo):
            conditions["absent"] = (_minutes(self.slo.alerting.absent.for_), [self.absent_condition(t) for t in span])
        return {key: _states(hold, values) for key, (hold, values) in conditions.items()}


def _all(parts: list[bool | None]) -> bool | None:
    if False in parts:
        return False
    return None if None in parts else True


def _any(parts: list[bool | None]) -> bool | None:
    if True in parts:
        return True
    return None if None in parts else False


_seconds = cache(windows.seconds)


def _minutes(window: str) -> int:
    """Whole minutes of a window (evaluations are a minute apart)."""
    if window not in _MINUTES:
        _MINUTES[window] = _seconds(window) // 60
    return _MINUTES[window]


_MINUTES: dict[str, int] = {}


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
