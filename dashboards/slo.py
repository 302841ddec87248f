"""SLOs: per SLO, the SLI against its objective, the error budget left in the period, the burn
rate over each alert window, and whether its page / ticket alerts fire.

Everything comes from the SLO compiler's recording rules (``medobs/catalog/slo.py``) and from
Prometheus's ``ALERTS``; one row per SLO (the row repeats over the ``slo`` variable).
"""

from __future__ import annotations

from typing import Any

from dashboards.panels import (
    NONE,
    RATIO,
    SERVICE_SLO,
    TIMES_BUDGET,
    Row,
    board,
    state_timeline,
    target,
    timeseries,
)
from medobs.core.catalog import platform, slo

#: What one SLO's series share: sloth_id tells apart the same SLO in two environments.
SLO_ID = "sloth_id"
#: Alert severities of the SLO tiers (issue 9): page and ticket.
TIERS = {"page": "critical", "ticket": "warning"}


def period_error_ratio() -> str:
    """The error ratio over each SLO's own period: the recording rule of the period it declares."""
    branches = [
        f"({SERVICE_SLO(slo.ERROR_RATIO[period].name)} and on ({SLO_ID}) "
        f"{SERVICE_SLO(slo.PERIOD_DAYS.name)} == {period.removesuffix('d')})"
        for period in slo.PERIODS
    ]
    return " or ".join(branches)


def _alert_firing(severity: str) -> str:
    """1 while an alert of ``severity`` fires for the SLO, else 0 (never "no data")."""
    alerts = SERVICE_SLO(platform.ALERTS.name, 'alertstate="firing"', f'severity="{severity}"')
    every_slo = f"group by (service, slo, {SLO_ID}) ({SERVICE_SLO(slo.OBJECTIVE.name)})"
    return f"max by (service, slo, {SLO_ID}) ({alerts}) or on ({SLO_ID}) (0 * {every_slo})"


def _burn_rate(window: str) -> Any:
    ratio = SERVICE_SLO(slo.ERROR_RATIO[window].name)
    return target(f"{ratio} / on ({SLO_ID}) {SERVICE_SLO(slo.ERROR_BUDGET.name)}", window)


def _per_slo() -> Row:
    return Row("SLO $slo", [
        timeseries(
            "SLI against objective", "Share of good events over the SLO's period (7d, 28d or 30d), and the objective.",
            RATIO,
            target(f"1 - ({period_error_ratio()})", "SLI {{service}} {{slo}}"),
            target(SERVICE_SLO(slo.OBJECTIVE.name), "objective"),
        ),
        timeseries(
            "Error budget remaining", "Share of the period's error budget not yet spent (negative when overspent).",
            RATIO, target(SERVICE_SLO(slo.BUDGET_REMAINING.name), "{{service}} {{slo}}"), minimum=None,
        ),
        timeseries(
            "Burn rate per window",
            "Error ratio over each alert window divided by the error budget: 1 (the red line) spends the "
            "budget exactly in one period; for a 30-day SLO the page tiers fire at 14.4 (1h) and 6 (6h), "
            "for 28 and 7 days at 13.44 / 5.6 and 3.36 / 1.4.",
            TIMES_BUDGET, *[_burn_rate(window) for window in slo.ALERT_WINDOWS], threshold=1,
        ),
        state_timeline(
            "Alert state", "Whether the SLO's page (critical) and ticket (warning) burn-rate alerts fire.",
            NONE, *[target(_alert_firing(severity), tier) for tier, severity in TIERS.items()],
        ),
    ], repeat="slo")


def dashboard() -> dict[str, Any]:
    return board(
        "slo",
        "SLOs",
        "Service level objectives: SLI against objective, error budget, burn rates and alert state, per SLO.",
        tags=["slo"],
        variables=SERVICE_SLO.variables(slo.OBJECTIVE.name),
        rows=[_per_slo()],
        time_from="now-7d",
    )
