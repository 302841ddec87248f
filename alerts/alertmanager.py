"""Alertmanager configuration: where each severity goes, grouping and inhibitions.

- ``severity="critical"`` pages (PagerDuty), ``severity="warning"`` opens a ticket (a webhook
  into the ticket system), ``severity="info"`` and ``severity="none"`` go nowhere, and
  ``MedobsHeartbeat`` goes to the heartbeat receiver every minute (a dead man's switch: silence
  there means alerting is broken). An alert without a known severity opens a ticket, so that it
  is seen and fixed.
- Notifications are grouped by alert name and ``service``.
- Inhibitions: a critical alert silences the warnings of the same ``namespace`` and ``service``;
  a target that Prometheus cannot scrape (``MedobsTargetDown``) silences every other alert from
  that target (same ``job`` and ``instance``); and a cause silences its own symptoms (TF Serving
  down silences the model and probe alerts, a model not AVAILABLE silences its probe alert).
  Each source matcher names our alerts only (a ``service`` label, or our alert names), so that
  kube-prometheus-stack's alerts, which carry no ``service``, are never silenced by these rules;
  and ours carry ``namespace`` and ``alertname``, so kube-prometheus-stack's own inhibitions
  (``equal: [namespace, alertname]``, the InfoInhibitor by ``namespace``) apply to them as to
  any workload's.

Two files share one routing tree:

- ``alertmanager.yml`` (docker-compose, a plain Alertmanager): the site's receivers, whose
  secrets are read from files under ``/etc/alertmanager/secrets/<Secret>/<key>`` (where
  prometheus-operator mounts the Secrets named in the Alertmanager's ``spec.secrets``); the
  configuration itself holds no secret. In Kubernetes the same routes, inhibitions and receivers
  become an AlertmanagerConfig (:mod:`medobs.deploy`), the files becoming Secret references.
- ``alertmanager-native.yml`` (the local stack): every receiver is a loopback webhook,
  ``http://127.0.0.1:9095/<receiver>``, where a test or a developer listens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.platform import HEARTBEAT as HEARTBEAT_ALERT
from alerts.platform import TARGET_DOWN
from medobs.core import site
from medobs.core.output import to_yaml

PAGING, TICKET, HEARTBEAT, NULL = "paging", "ticket", "heartbeat", "null"
#: The receiver of each severity.
SEVERITY_RECEIVERS = {"critical": PAGING, "warning": TICKET, "info": NULL, "none": NULL}
GROUP_BY = ("alertname", "service")

#: The loopback port the local stack's receivers post to (moved by the stack's --port-offset).
LOCAL_WEBHOOK_PORT = 9095


@dataclass(frozen=True)
class RouteCase:
    """Labels of an alert and the receivers Alertmanager must pick for it."""

    labels: dict[str, str]
    receiver: str
    why: str


#: Where each kind of alert goes, checked with `amtool config routes test` (and shown in the README).
ROUTE_CASES: tuple[RouteCase, ...] = (
    RouteCase({"alertname": "PostgresDown", "severity": "critical", "service": "postgresql"}, PAGING,
              "critical pages"),
    RouteCase({"alertname": "QueueBacklogNotDraining", "severity": "warning", "service": "rabbitmq"}, TICKET,
              "warning opens a ticket"),
    RouteCase({"alertname": "SomethingNoteworthy", "severity": "info", "service": "gpu"}, NULL,
              "info is not routed"),
    RouteCase({"alertname": HEARTBEAT_ALERT, "severity": "none", "service": "monitoring"}, HEARTBEAT,
              "the heartbeat feeds the heartbeat receiver"),
    RouteCase({"alertname": "Watchdog", "severity": "none", "namespace": "monitoring"}, NULL,
              "kube-prometheus-stack's own Watchdog (severity none) is not ours to forward"),
    RouteCase({"alertname": "AlertWithoutSeverity", "service": "redis"}, TICKET,
              "an alert without a severity opens a ticket, so that it gets one"),
    RouteCase({"alertname": "SloErrorBudgetBurn", "severity": "critical", "service": "api-gateway",
               "slo": "availability"}, PAGING, "SLO burn-rate pages route like any critical"),
)


def route() -> dict[str, Any]:
    return {
        "receiver": TICKET,
        "group_by": list(GROUP_BY),
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
        "routes": [
            {
                "matchers": [f'alertname="{HEARTBEAT_ALERT}"'],
                "receiver": HEARTBEAT,
                "group_wait": "0s",
                "group_interval": "1m",
                "repeat_interval": "1m",
            },
            {"matchers": ['severity="critical"'], "receiver": PAGING, "repeat_interval": "1h"},
            {"matchers": ['severity="warning"'], "receiver": TICKET, "repeat_interval": "24h"},
            {"matchers": ['severity=~"info|none"'], "receiver": NULL},
        ],
    }


def inhibit_rules() -> list[dict[str, Any]]:
    return [
        {
            "source_matchers": ['severity="critical"', 'service=~".+"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["namespace", "service"],
        },
        {
            # No target matchers: everything from the target. An alert that matches both sides
            # is never inhibited by an equal one, so MedobsTargetDown does not silence itself.
            "source_matchers": [f'alertname="{TARGET_DOWN}"'],
            "equal": ["job", "instance"],
        },
        {
            "source_matchers": ['alertname="TFServingDown"'],
            "target_matchers": ['alertname=~"ModelNotAvailable|InferenceProbeFailing"'],
            "equal": ["service"],
        },
        {
            "source_matchers": ['alertname="ModelNotAvailable"'],
            "target_matchers": ['alertname="InferenceProbeFailing"'],
            "equal": ["model"],
        },
    ]


def production_receivers() -> list[dict[str, Any]]:
    """The site's receivers (``receivers`` of the site file): URLs inline, each credential a file
    where prometheus-operator mounts the Secret key that holds it (the Secrets named in the
    Alertmanager's ``spec.secrets``)."""
    receivers = site.current().receivers

    def bearer(secret: site.SecretKey) -> dict[str, Any]:
        return {"authorization": {"type": "Bearer", "credentials_file": secret.mounted_file}}

    return [
        {
            "name": PAGING,
            "pagerduty_configs": [{
                "routing_key_file": receivers.pagerduty_routing_key.mounted_file,
                "url": receivers.pagerduty_url,
                "send_resolved": True,
                "severity": "critical",
                "links": [
                    {"href": "{{ .CommonAnnotations.runbook_url }}", "text": "Runbook"},
                    {"href": "{{ .CommonAnnotations.dashboard_url }}", "text": "Dashboard"},
                ],
            }],
        },
        {
            "name": TICKET,
            "webhook_configs": [{
                "url": receivers.ticket_url, "send_resolved": True, "http_config": bearer(receivers.ticket_token),
            }],
        },
        {
            "name": HEARTBEAT,
            "webhook_configs": [{
                "url": receivers.heartbeat_url, "send_resolved": False,
                "http_config": bearer(receivers.heartbeat_token),
            }],
        },
        {"name": NULL},
    ]


def webhook_receivers(base_url: str) -> list[dict[str, Any]]:
    """Every receiver as a plain webhook to ``base_url/<receiver>`` (local stack, tests)."""
    return [
        {"name": name, "webhook_configs": [{"url": f"{base_url}/{name}", "send_resolved": name != HEARTBEAT}]}
        for name in (PAGING, TICKET, HEARTBEAT)
    ] + [{"name": NULL}]


def config(receivers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "global": {"resolve_timeout": "5m"},
        "route": route(),
        "inhibit_rules": inhibit_rules(),
        "receivers": receivers,
    }


def local_config(port: int = LOCAL_WEBHOOK_PORT) -> dict[str, Any]:
    """The local stack's configuration: the production routing, loopback webhook receivers."""
    return config(webhook_receivers(f"http://127.0.0.1:{port}"))


def build_files() -> dict[str, str]:
    source = "alerts/alertmanager.py"
    return {
        "alertmanager/alertmanager.yml": to_yaml(config(production_receivers()), source=source),
        "alertmanager/alertmanager-native.yml": to_yaml(local_config(), source=source),
    }
