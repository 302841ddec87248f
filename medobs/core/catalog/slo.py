"""Recording rules the SLO compiler generates (``medobs slo build``), as the SLO dashboard,
reports and alerts query them. Every series carries ``service`` and ``slo`` labels.

The windows are a contract: ``slo/windows.py`` computes the alert windows of each period and a
test checks that they are the ones declared here.
"""

from medobs.core.catalog import metric

SOURCE = "medobs-slo"
_SLO = ("service", "slo")

#: Windows of the error-ratio recording rules: the SRE Workbook's alert windows ...
ALERT_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: ... and the SLO periods the specs may choose.
PERIODS = ("7d", "28d", "30d")
#: The alert windows each period's alerts use: the Workbook's (for 30 days) scaled to the period,
#: to whole minutes. Every SLO also records ALERT_WINDOWS, whatever its period, for the dashboard.
SCALED_ALERT_WINDOWS = {
    "7d": ("1m", "7m", "14m", "28m", "1h24m", "5h36m", "16h48m"),
    "28d": ("5m", "28m", "56m", "1h52m", "5h36m", "22h24m", "2d19h12m"),
    "30d": ALERT_WINDOWS,
}
#: Every window an SLO may record events and error ratios for.
EVENT_WINDOWS = tuple(dict.fromkeys(ALERT_WINDOWS + sum(SCALED_ALERT_WINDOWS.values(), ())))

ERROR_RATIO = {
    window: metric(
        f"slo:sli_error:ratio_rate{window}", "gauge",
        f"Share of bad events over the last {window} (0 when there was no traffic).",
        source=SOURCE, labels=_SLO, unit="ratio",
    )
    for window in EVENT_WINDOWS + PERIODS
}
ERROR_EVENTS = {
    window: metric(
        f"slo:sli_error_events:rate{window}", "gauge",
        f"Bad events over the last {window}, as the SLI's error query counts them (events per second "
        "for rate() queries, events or time slices for counting ones); 0 when none.",
        source=SOURCE, labels=_SLO,
    )
    for window in EVENT_WINDOWS
}
TOTAL_EVENTS = {
    window: metric(
        f"slo:sli_total_events:rate{window}", "gauge",
        f"All events over the last {window}, in the same unit as slo:sli_error_events:rate{window}.",
        source=SOURCE, labels=_SLO,
    )
    for window in EVENT_WINDOWS
}
SLICE_ERROR = metric(
    "slo:sli_slice_error:bool", "gauge",
    "Time-slice SLIs: 1 when the slice at this evaluation is bad, 0 when good, absent when the "
    "source is not observed. Windows count these samples.",
    source=SOURCE, labels=_SLO,
)
OBJECTIVE = metric(
    "slo:objective:ratio", "gauge", "The SLO's objective, as a ratio (0.999 for 99.9%).",
    source=SOURCE, labels=_SLO, unit="ratio",
)
ERROR_BUDGET = metric(
    "slo:error_budget:ratio", "gauge", "The error budget: 1 - objective.",
    source=SOURCE, labels=_SLO, unit="ratio",
)
PERIOD_DAYS = metric(
    "slo:period:days", "gauge", "Length of the SLO period in days.", source=SOURCE, labels=_SLO,
)
PERIOD_BURN_RATE = metric(
    "slo:period_burn_rate:ratio", "gauge",
    "Error ratio over the whole period / error budget: the share of the budget spent so far.",
    source=SOURCE, labels=_SLO, unit="ratio",
)
BUDGET_REMAINING = metric(
    "slo:period_error_budget_remaining:ratio", "gauge",
    "Share of the period's error budget not yet consumed (negative when overspent).",
    source=SOURCE, labels=_SLO, unit="ratio",
)
BURN_RATE = metric(
    "slo:current_burn_rate:ratio", "gauge",
    "How fast the budget burns now (error ratio over 5m / error budget); 1 spends it exactly in one period.",
    source=SOURCE, labels=_SLO, unit="ratio",
)
