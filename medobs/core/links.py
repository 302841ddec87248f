"""Where alerts and dashboards point people: Grafana dashboards and runbooks.

Alerts carry ``dashboard_url`` and ``runbook_url`` annotations built from these, and the
dashboards are published with these uids, so a link in a page always opens the right board.
"""

#: Base URL of the platform's Grafana (override when generating for another site).
GRAFANA_URL = "https://grafana.med-diagnosis.com"
#: Where the runbooks (alerts/runbooks/ of this repository, also shipped in the package) are browsable.
RUNBOOK_BASE_URL = "https://gitlab.med-diagnosis.com/platform/medobs/-/blob/main/alerts/runbooks"

#: Stable Grafana uids of the package's dashboards.
DASHBOARD_UIDS = {
    "system-overview": "medobs-system-overview",
    "database": "medobs-database",
    "message-queue": "medobs-message-queue",
    "gpu": "medobs-gpu",
    "slo": "medobs-slo",
}


def dashboard_url(name: str) -> str:
    return f"{GRAFANA_URL}/d/{DASHBOARD_UIDS[name]}"


def runbook_url(alert_name: str) -> str:
    return f"{RUNBOOK_BASE_URL}/{alert_name}.md"
