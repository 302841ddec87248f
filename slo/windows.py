"""Durations and alert windows: the SRE Workbook's multi-window, multi-burn-rate tiers.

The Workbook's table is for a 30-day period: page when 2% of the budget burns in 1 hour (14.4x,
checked again over 5 minutes) or 5% in 6 hours (6x, over 30 minutes); open a ticket when 10%
burns in 1 day (3x, over 2 hours) or in 3 days (1x, over 6 hours). Every period keeps these
windows (so the rules are the same seven windows whatever the period, as Sloth's are) and scales
the burn factors instead: a tier still fires once the same share of the period's budget is spent
(``factor = share x period / long window``: 13.44x over 1 hour for 28 days, 3.36x for 7 days).

No window is shorter than four scrape intervals (a window with one or two samples of a counter
makes ``rate()`` return nothing): with a scrape interval above 75 s, the windows below four
intervals are lengthened to four intervals and the factors follow the longer windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

# The SLO's durations are Prometheus's: its modules and tests read them from here.
from medobs.core.durations import humanize, seconds  # noqa: F401
from medobs.core.durations import render as duration

#: The SLO periods a spec may choose.
PERIODS = ("7d", "28d", "30d")
DEFAULT_SCRAPE_INTERVAL = "1m"
#: A window holds at least this many scrape intervals.
MIN_SCRAPES = 4
#: The Workbook's windows, shortest first: every SLO records its error ratio over each.
WORKBOOK_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
_WORKBOOK_PERIOD = 30 * 86400


@dataclass(frozen=True)
class Tier:
    """One multi-window burn-rate condition: true when the error ratio over both windows is above
    ``factor`` times the error budget. An SLO's two page tiers form one alert, and so do its two
    ticket tiers."""

    kind: Literal["page", "ticket"]
    factor: float
    long: str
    short: str
    #: The share of the period's budget spent over ``long`` at exactly ``factor``.
    budget_share: float

    @property
    def long_seconds(self) -> int:
        return seconds(self.long)

    @property
    def short_seconds(self) -> int:
        return seconds(self.short)


#: (kind, share of the budget, long window, short window): the Workbook's table.
_WORKBOOK_TIERS = (
    ("page", 0.02, "1h", "5m"),
    ("page", 0.05, "6h", "30m"),
    ("ticket", 0.10, "1d", "2h"),
    ("ticket", 0.10, "3d", "6h"),
)


@cache
def window(workbook: str, scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> str:
    """A Workbook window, lengthened to :data:`MIN_SCRAPES` scrape intervals where shorter."""
    return duration(max(seconds(workbook), MIN_SCRAPES * seconds(scrape_interval)))


@cache
def sli_windows(scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> tuple[str, ...]:
    """The windows an SLO records its error ratio over, shortest first (``5m`` is the base one)."""
    return tuple(dict.fromkeys(window(w, scrape_interval) for w in WORKBOOK_WINDOWS))


@cache
def base_window(scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> str:
    """The window of the current burn rate and of the events the period is counted from."""
    return window(WORKBOOK_WINDOWS[0], scrape_interval)


@cache
def tiers(period: str, scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> tuple[Tier, ...]:
    """The four Workbook tiers for ``period``: the Workbook's windows, factors scaled to the period
    (rounded to 4 decimals, as written in the rules)."""
    period_seconds = seconds(period)
    found = []
    for kind, share, long, short in _WORKBOOK_TIERS:
        long, short = window(long, scrape_interval), window(short, scrape_interval)
        factor = round(share * period_seconds / seconds(long), 4)
        found.append(Tier(kind, factor, long, short, share))
    return tuple(found)


@cache
def alert_windows(period: str, scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> tuple[str, ...]:
    """The windows the tiers of ``period`` use, shortest first."""
    used = {w for tier in tiers(period, scrape_interval) for w in (tier.long, tier.short)}
    return tuple(sorted(used, key=seconds))
