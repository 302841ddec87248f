"""Platform alerts: scrape targets down or missing, exporters reporting ``up 0``, containers
restarting, HPAs at their maximum, certificates about to expire, PostgreSQL backups failing or
older than the RPO, and the always-firing heartbeat (dead man's switch).

Names stay clear of kube-prometheus-stack's default rules (``TargetDown`` and ``Watchdog`` are
its own): ours are :data:`TARGET_DOWN` and :data:`HEARTBEAT`; the heartbeat has severity ``none``,
kube-prometheus-stack's convention, so that its InfoInhibitor never silences it."""

from __future__ import annotations

from alerts.model import JOB_SERVICES, Alert, job, promql, sel
from alerts.thresholds import Thresholds
from medobs.core import scrape_jobs, site
from medobs.core.catalog import Metric, gpu, inference, kubernetes, platform, queue

KUBERNETES_SERVICE = "kubernetes"
BACKUP_SERVICE = "postgresql-backup"
MONITORING_SERVICE = "monitoring"
#: A scrape target Prometheus cannot scrape (kube-prometheus-stack's own is ``TargetDown``).
TARGET_DOWN = "MedobsTargetDown"
#: The always-firing dead man's switch (kube-prometheus-stack's own is ``Watchdog``).
HEARTBEAT = "MedobsHeartbeat"
#: The package's own exporters: their ``*_up`` metric, scrape job, and the service they watch.
EXPORTERS: tuple[tuple[Metric, str, str], ...] = (
    (gpu.UP, job("gpu"), "gpu"),
    (queue.UP, job("rabbitmq"), "rabbitmq"),
    (inference.UP, job("inference-exporter"), "ml-inference"),
)


def alerts(t: Thresholds) -> list[Alert]:
    return [
        *scrape_alerts(t),
        *exporter_alerts(t),
        *kubernetes_alerts(t),
        *backup_alerts(t),
        heartbeat(),
    ]


def scrape_alerts(t: Thresholds) -> list[Alert]:
    """A MedobsTargetDown and a ScrapeJobMissing rule for every scrape job of :mod:`medobs.deploy.scrape`
    (the static ``job`` label keeps promtool's lint from seeing two jobs of one service as
    duplicate rules)."""
    p = t.platform
    rules = []
    for name in scrape_jobs.JOB_NAMES:
        rules.append(Alert(
            name=TARGET_DOWN,
            expr=f"{platform.UP}{{{scrape_jobs.job_matchers(name)}}} == 0",
            for_=p.target_down_for,
            severity="warning",
            service=JOB_SERVICES[name],
            dashboard="system-overview",
            labels={"job": job(name)},
            summary="Prometheus cannot scrape a target.",
            description=(
                "Prometheus has failed to scrape {{ $labels.job }} target {{ $labels.instance }} "
                "for @for: it is down, or unreachable from Prometheus. Alerts from that target "
                "are inhibited while this fires."
            ),
        ))
    for name in scrape_jobs.JOB_NAMES:
        rules.append(Alert(
            name="ScrapeJobMissing",
            expr=f"absent({platform.UP}{{{scrape_jobs.job_matchers(name)}}})",
            for_=p.job_missing_for,
            severity="warning",
            service=JOB_SERVICES[name],
            dashboard="system-overview",
            labels={"job": job(name)},
            summary="Prometheus has no target at all for a scrape job.",
            description=(
                "Prometheus has had no {{ $labels.job }} target for @for: service discovery "
                "finds no pod or service for the job (scaled to zero, or labels or ports changed), "
                "so none of its alerts can fire."
            ),
        ))
    return rules


def exporter_alerts(t: Thresholds) -> list[Alert]:
    return [
        Alert(
            name="ExporterCollectionFailing",
            expr=f"{sel(up, job=job_name)} == 0",
            for_=t.platform.exporter_down_for,
            severity="warning",
            service=service,
            dashboard="system-overview",
            labels={"exporter": up.source},
            summary="An exporter answers scrapes but cannot collect from what it watches.",
            description=(
                "@exporter at {{ $labels.instance }} has reported @metric 0 for @for: it cannot "
                "collect from @service, so that service's other alerts cannot fire."
            ),
            values={"exporter": up.source, "metric": up.name, "service": service},
        )
        for up, job_name, service in EXPORTERS
    ]


def kubernetes_alerts(t: Thresholds) -> list[Alert]:
    p = t.platform
    namespace = site.current().namespace  # whose containers, HPAs and certificates are watched
    restarts = sel(kubernetes.RESTARTS, namespace=namespace)
    return [
        Alert(
            name="ContainerRestarting",
            expr=f"increase({restarts}[{p.restarts_window}]) >= {p.restarts}",
            severity="warning",
            service=KUBERNETES_SERVICE,
            dashboard="system-overview",
            summary="A container keeps restarting.",
            description=(
                "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} "
                "restarted {{ $value | humanize }} times in the last @window (@threshold or more): "
                "it is crash-looping or being OOM-killed."
            ),
            values={"window": p.restarts_window, "threshold": p.restarts},
        ),
        Alert(
            name="HpaAtMaxReplicas",
            expr=promql(f"""
                {sel(kubernetes.HPA_CURRENT, namespace=namespace)}
                  >= {sel(kubernetes.HPA_MAX, namespace=namespace)}
            """),
            for_=p.hpa_for,
            severity="warning",
            service=KUBERNETES_SERVICE,
            dashboard="system-overview",
            summary="An autoscaler has run at its maximum replicas.",
            description=(
                "HPA {{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }} has run at its "
                "maximum of {{ $value }} replicas for @for: it cannot add capacity if load grows."
            ),
        ),
        Alert(
            name="CertificateExpiringSoon",
            expr=promql(f"""
                {sel(kubernetes.CERT_EXPIRATION, namespace=namespace)} - time()
                  < {p.certificate_days:g} * 86400
            """),
            for_=p.certificate_for,
            severity="warning",
            service=KUBERNETES_SERVICE,
            dashboard="system-overview",
            summary="A TLS certificate expires soon and cert-manager has not renewed it.",
            description=(
                "Certificate {{ $labels.namespace }}/{{ $labels.name }} (issuer "
                "{{ $labels.issuer_name }}) expires in {{ $value | humanizeDuration }} (less than "
                "@days days): cert-manager renews 30 days ahead, so renewal is failing."
            ),
            values={"days": f"{p.certificate_days:g}"},
        ),
    ]


def backup_alerts(t: Thresholds) -> list[Alert]:
    p = t.platform
    return [
        Alert(
            name="PostgresBackupTooOld",
            expr=f"time() - {platform.BACKUP_LAST_SUCCESS} > {p.backup_max_age_hours:g} * 3600",
            for_=p.backup_for,
            severity="critical",
            service=BACKUP_SERVICE,
            dashboard="database",
            summary="The last successful PostgreSQL backup is older than the RPO.",
            description=(
                "The last successful backup of {{ $labels.database }} finished "
                "{{ $value | humanizeDuration }} ago (more than @hours hours, the platform's RPO): "
                "losing the database now loses more data than the platform promises."
            ),
            values={"hours": f"{p.backup_max_age_hours:g}"},
        ),
        Alert(
            name="PostgresBackupFailed",
            expr=f"{platform.BACKUP_EXIT_CODE} != 0",
            for_=p.backup_failed_for,
            severity="warning",
            service=BACKUP_SERVICE,
            dashboard="database",
            summary="The last PostgreSQL backup run failed.",
            description=(
                "The last backup run of {{ $labels.database }} exited with status {{ $value }}: "
                "fix it and run it again before the backup grows older than the RPO."
            ),
        ),
        Alert(
            name="PostgresBackupMetricsMissing",
            expr=f"absent({platform.BACKUP_LAST_SUCCESS})",
            for_=p.backup_missing_for,
            severity="warning",
            service=BACKUP_SERVICE,
            dashboard="database",
            summary="Prometheus has no record of a successful PostgreSQL backup.",
            description=(
                "Prometheus has had no @metric series for @for: the backup never succeeded, "
                "its script does not run `medobs backup-metrics`, or node_exporter does not read "
                "the textfile folder. PostgresBackupTooOld cannot fire until this is fixed."
            ),
            values={"metric": platform.BACKUP_LAST_SUCCESS.name},
        ),
    ]


def heartbeat() -> Alert:
    return Alert(
        name=HEARTBEAT,
        expr="vector(1)",
        severity="none",
        service=MONITORING_SERVICE,
        dashboard="system-overview",
        summary="Always firing: the heartbeat that proves the alerting pipeline works.",
        description=(
            "This alert always fires. Alertmanager sends it to the heartbeat receiver every "
            "minute; when the heartbeats stop, Prometheus, Alertmanager or the path between "
            "them is broken, and no other alert would reach anyone."
        ),
    )
