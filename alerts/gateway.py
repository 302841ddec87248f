"""API gateway alerts: lost replicas, a surge of 401s, the gateway unreachable.

Latency and error-ratio paging is the SLO engine's (``slo:*`` burn-rate alerts), not repeated here.
"""

from __future__ import annotations

from alerts.model import Alert, job, percent, promql, sel, service_down
from alerts.thresholds import Thresholds
from medobs.core import site
from medobs.core.catalog import gateway, kubernetes

SERVICE = "api-gateway"
JOB = job("api-gateway")
DEPLOYMENT = "api-gateway"


def alerts(t: Thresholds) -> list[Alert]:
    g = t.gateway
    requests = gateway.HTTP_SERVER_REQUESTS.count
    unauthorized = f"sum by (job) (rate({sel(requests, job=JOB, status='401')}[{g.auth_failure_window}]))"
    all_requests = f"sum by (job) (rate({sel(requests, job=JOB)}[{g.auth_failure_window}]))"
    return [
        Alert(
            name="ApiGatewayReplicasLow",
            expr=f"{sel(kubernetes.DEPLOYMENT_READY, namespace=site.current().namespace, deployment=DEPLOYMENT)}"
            f" < {g.min_ready_replicas}",
            for_=g.replicas_for,
            severity="warning",
            service=SERVICE,
            dashboard="system-overview",
            summary="The API gateway runs with fewer ready replicas than it needs.",
            description=(
                "Deployment {{ $labels.namespace }}/{{ $labels.deployment }} has had only "
                "{{ $value }} ready replicas (fewer than @min) for @for: the gateway has lost "
                "its redundancy and one more failure takes capacity below demand."
            ),
            values={"min": g.min_ready_replicas},
        ),
        Alert(
            name="ApiGatewayAuthFailureSurge",
            expr=promql(f"""
                {unauthorized}
                  / {all_requests}
                  > {g.auth_failure_ratio}
                and
                {unauthorized} > {g.auth_failure_min_rate}
            """),
            for_=g.auth_failure_for,
            severity="warning",
            service=SERVICE,
            dashboard="system-overview",
            summary="Many requests to the API gateway are rejected as unauthorized (401).",
            description=(
                "{{ $value | humanizePercentage }} of the requests to {{ $labels.job }} were "
                "answered 401 over the last @window (more than @ratio, and more than @rate/s) "
                "for @for: a broken JWT key rotation, clock skew, or credential stuffing."
            ),
            values={
                "window": g.auth_failure_window,
                "ratio": percent(g.auth_failure_ratio),
                "rate": g.auth_failure_min_rate,
            },
        ),
        service_down(
            "ApiGatewayDown", JOB, SERVICE, g.down_for,
            summary="No API gateway instance answers: the platform is unreachable.",
            consequence="every gateway pod is down or unreachable, so no request reaches the platform.",
        ),
    ]
