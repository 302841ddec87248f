"""Recording rules the SLO compiler generates (``medobs slo build``), as the SLO dashboard,
reports and alerts query them. Every series carries ``service`` and ``slo`` labels."""

from medobs.catalog import metric

SOURCE = "medobs-slo"
_SLO = ("service", "slo")

#: Windows of the error-ratio recording rules: the SRE Workbook's alert windows ...
ALERT_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: ... and the SLO periods the specs may choose.
PERIODS = ("7d", "28d", "30d")

ERROR_RATIO = {
    window: metric(
        f"slo:sli_error:ratio_rate{window}", "gauge",
        f"Share of bad events over the last {window} (0 when there was no traffic).",
        source=SOURCE, labels=_SLO, unit="ratio",
    )
    for window in ALERT_WINDOWS + PERIODS
}
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
