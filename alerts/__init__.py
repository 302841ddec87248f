"""Alert rules, Alertmanager routing and backup-freshness metrics (installed as alerts).

One module per domain (:mod:`gateway`, :mod:`inference`, :mod:`gpu`, :mod:`queue`,
:mod:`database`, :mod:`redis`, :mod:`platform`) returns its :class:`~model.Alert` list from the
thresholds in :mod:`thresholds`; ``medobs build`` renders them into
``build/prometheus/rules/alerts-<domain>.yml``, prometheus-operator ``PrometheusRule`` objects,
the promtool unit tests of ``alerts/tests/`` and the Alertmanager configuration (:mod:`build`).
"""

from __future__ import annotations

from types import ModuleType

from alerts import database, gateway, gpu, inference, platform, queue, redis
from alerts.model import Alert
from alerts.thresholds import DEFAULT, Thresholds

DOMAINS: dict[str, ModuleType] = {
    "gateway": gateway,
    "inference": inference,
    "gpu": gpu,
    "queue": queue,
    "database": database,
    "redis": redis,
    "platform": platform,
}


def alerts_by_domain(thresholds: Thresholds = DEFAULT) -> dict[str, list[Alert]]:
    return {domain: module.alerts(thresholds) for domain, module in DOMAINS.items()}


def all_alerts(thresholds: Thresholds = DEFAULT) -> list[Alert]:
    return [alert for alerts in alerts_by_domain(thresholds).values() for alert in alerts]
