"""Durations and alert windows: the SRE Workbook's multi-window, multi-burn-rate tiers, scaled to
the SLO's period.

The Workbook's table is for a 30-day period: page when 2% of the budget burns in 1 hour (14.4x,
checked again over 5 minutes) or 5% in 6 hours (6x, over 30 minutes); open a ticket when 10%
burns in 1 day (3x, over 2 hours) or in 3 days (1x, over 6 hours). For another period the
windows scale with it and the burn rates stay, so each tier still fires after the same share of
the budget and a total outage is caught after the same share of the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The SLO's durations are Prometheus's: its modules and tests read them from here.
from medobs.core.durations import humanize, seconds  # noqa: F401
from medobs.core.durations import render as duration

#: The SLO periods a spec may choose.
PERIODS = ("7d", "28d", "30d")
_WORKBOOK_PERIOD = 30 * 86400


@dataclass(frozen=True)
class Tier:
    """One multi-window burn-rate alert: it fires when the error ratio over both windows is above
    ``factor`` times the error budget."""

    kind: Literal["page", "ticket"]
    factor: float
    long: str
    short: str

    @property
    def long_seconds(self) -> int:
        return seconds(self.long)

    @property
    def short_seconds(self) -> int:
        return seconds(self.short)


_WORKBOOK_TIERS = (
    ("page", 14.4, 3600, 300),
    ("page", 6.0, 6 * 3600, 1800),
    ("ticket", 3.0, 86400, 7200),
    ("ticket", 1.0, 3 * 86400, 6 * 3600),
)


def _scaled(window_seconds: int, period_seconds: int) -> str:
    minutes = max(1, round(window_seconds * period_seconds / _WORKBOOK_PERIOD / 60))
    return duration(minutes * 60)


def tiers(period: str) -> tuple[Tier, ...]:
    """The four Workbook tiers with their windows scaled to ``period``, to whole minutes."""
    period_seconds = seconds(period)
    return tuple(
        Tier(kind, factor, _scaled(long, period_seconds), _scaled(short, period_seconds))
        for kind, factor, long, short in _WORKBOOK_TIERS
    )


def alert_windows(period: str) -> tuple[str, ...]:
    """The windows the tiers of ``period`` use, shortest first."""
    windows = {w for tier in tiers(period) for w in (tier.long, tier.short)}
    return tuple(sorted(windows, key=seconds))
