"""Recording rules the SLO compiler generates (``medobs slo build``), as the SLO dashboard,
reports and alerts query them. Every series carries ``service`` and ``slo`` labels, Sloth's
``sloth_id``, ``sloth_service`` and ``sloth_slo`` and the spec's labels: the SLI's own labels are
aggregated away, so none of them can collide with these.

The windows are a contract: ``slo/windows.py`` computes the windows of each period and a test
checks that they are the ones declared here.
"""

from medobs.core.catalog import metric

SOURCE = "medobs-slo"
_SLO = ("service", "slo")

#: Windows of the error-ratio recording rules: the SRE Workbook's alert windows, the same for
#: every period (slo/windows.py scales the burn factors instead) ...
ALERT_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: ... and the SLO periods the specs may choose.
PERIODS = ("7d", "28d", "30d")
#: The window whose bad and total events are recorded: the current burn rate and the period's
#: counted events read them.
BASE_WINDOW = "5m"

ERROR_RATIO = {
    window: metric(
        f"slo:sli_error:ratio_rate{window}", "gauge",
        f"Share of bad events over the last {window} (0 when there was no traffic).",
        source=SOURCE, labels=_SLO, unit="ratio",
    )
    for window in ALERT_WINDOWS + PERIODS
}
ERROR_EVENTS = metric(
    f"slo:sli_error_events:rate{BASE_WINDOW}", "gauge",
    f"Bad events over the last {BASE_WINDOW}, as the SLI's error query counts them (events per second "
    "for rate() queries, events for counting ones); 0 when none.",
    source=SOURCE, labels=_SLO,
)
TOTAL_EVENTS = metric(
    f"slo:sli_total_events:rate{BASE_WINDOW}", "gauge",
    f"All events over the last {BASE_WINDOW}, in the same unit as slo:sli_error_events:rate{BASE_WINDOW}.",
    source=SOURCE, labels=_SLO,
)
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
    "slo:time_period:days", "gauge", "Length of the SLO period in days (Sloth's name).", source=SOURCE, labels=_SLO,
)
INFO = metric(
    "sloth_slo_info", "gauge",
    "Always 1: one series per SLO, labelled like Sloth's (sloth_id, sloth_service, sloth_slo, sloth_spec, "
    "sloth_objective), so Sloth's Grafana dashboards list medobs SLOs.",
    source=SOURCE, labels=_SLO,
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
