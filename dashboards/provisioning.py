"""Grafana provisioning for the docker-compose stack: the Prometheus datasource (the site's
``grafana.datasource_uid``, so the dashboards' ``datasource`` variable resolves) and a file
provider that loads build/grafana/dashboards/ into the site's ``grafana.folder``, read-only.

docker-compose.yml mounts the two provisioning folders and the dashboards at the paths below.
"""

from __future__ import annotations

from typing import Any

from dashboards.panels import DATASOURCE_NAME
from medobs.core import scrape_jobs, site

#: The uid of the Grafana folder the dashboards live in (provisioned here, created by ``publish`` elsewhere).
FOLDER_UID = "medobs"
#: The default site's folder title (``publish`` creates the folder with it); provisioning uses the site's.
FOLDER_TITLE = site.DEFAULT.grafana.folder
#: Where docker-compose.yml mounts build/grafana/dashboards/ in the Grafana container.
CONTAINER_DASHBOARDS_DIR = "/etc/grafana/dashboards/medobs"


def prometheus_url() -> str:
    prometheus = scrape_jobs.job("prometheus")
    return f"http://{prometheus.compose_host}:{prometheus.port}"


def datasources() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": DATASOURCE_NAME,
            "uid": site.current().grafana.datasource_uid,
            "type": "prometheus",
            "access": "proxy",
            "url": prometheus_url(),
            "isDefault": True,
            "editable": False,
            # The scrape interval, so that $__rate_interval is at least four scrapes.
            "jsonData": {"timeInterval": scrape_jobs.SCRAPE_INTERVAL, "httpMethod": "POST"},
        }],
    }


def dashboard_providers() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "medobs",
            "orgId": 1,
            "type": "file",
            "folder": site.current().grafana.folder,
            "folderUid": FOLDER_UID,
            "disableDeletion": True,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 30,
            "options": {"path": CONTAINER_DASHBOARDS_DIR, "foldersFromFilesStructure": False},
        }],
    }
