"""Where alerts and dashboards point people: Grafana dashboards and runbooks.

Alerts carry ``dashboard_url`` and ``runbook_url`` annotations built from these, and the
dashboards are published with these uids, so a link in a page always opens the right board.
Grafana's URL and the runbooks' base are the site's (``grafana.url``, ``runbook_base_url``), read
when a link is made.
"""

from medobs.core import site

#: Stable Grafana uids of the package's dashboards.
DASHBOARD_UIDS = {
    "system-overview": "medobs-system-overview",
    "database": "medobs-database",
    "message-queue": "medobs-message-queue",
    "gpu": "medobs-gpu",
    "slo": "medobs-slo",
}


def grafana_url() -> str:
    """Base URL of the site's Grafana, without a trailing slash."""
    return site.current().grafana.url.rstrip("/")


def runbook_base_url() -> str:
    """Where the runbooks (alerts/runbooks/, also shipped in the package) are browsable."""
    return site.current().runbook_base_url.rstrip("/")


def dashboard_url(name: str) -> str:
    return f"{grafana_url()}/d/{DASHBOARD_UIDS[name]}"


def runbook_url(alert_name: str) -> str:
    return f"{runbook_base_url()}/{alert_name}.md"
