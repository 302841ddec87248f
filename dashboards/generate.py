"""The dashboards and Grafana provisioning files under build/grafana/ (``medobs build``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboards import database, gpu, message_queue, provisioning, slo, system_overview
from medobs.core.output import to_json, to_yaml

#: Every board, by its key in :data:`medobs.core.links.DASHBOARD_UIDS`.
BOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "system-overview": system_overview.dashboard,
    "database": database.dashboard,
    "message-queue": message_queue.dashboard,
    "gpu": gpu.dashboard,
    "slo": slo.dashboard,
}
DASHBOARDS_DIR = "grafana/dashboards"
PROVISIONING_DIR = "grafana/provisioning"


def build_files() -> dict[str, str]:
    """Files under build/ that the dashboards own."""
    source = "dashboards/provisioning.py"
    files = {f"{DASHBOARDS_DIR}/{key}.json": to_json(make()) for key, make in BOARDS.items()}
    files[f"{PROVISIONING_DIR}/datasources/medobs.yml"] = to_yaml(provisioning.datasources(), source=source)
    files[f"{PROVISIONING_DIR}/dashboards/medobs.yml"] = to_yaml(provisioning.dashboard_providers(), source=source)
    return files
