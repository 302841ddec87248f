"""Prometheus scrape configuration for the platform's jobs, in three flavours.

- ``compose``: static targets by docker-compose service name;
- ``native``: static loopback targets for the local stack (``medobs stack up``);
- ``kubernetes``: ``kubernetes_sd_configs`` with the platform's relabelling (keep ``app=...``),
  plus prometheus-operator ``PodMonitor`` / ``ServiceMonitor`` objects.

All three come from :data:`JOBS`, so a job added here reaches every flavour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from medobs.output import to_yaml, to_yaml_documents

SCRAPE_INTERVAL = "15s"
EVALUATION_INTERVAL = "15s"
NAMESPACE = "medical-platform"
#: Where prometheus-operator objects and the monitoring stack live in the cluster.
MONITORING_NAMESPACE = "monitoring"

Flavour = Literal["compose", "native", "kubernetes"]
FLAVOURS: tuple[Flavour, ...] = ("compose", "native", "kubernetes")


@dataclass(frozen=True)
class ScrapeJob:
    """One Prometheus job and where its targets are in each flavour.

    ``k8s_kind`` ``pod`` selects pods by their ``app`` label and a container port number
    (PodMonitor); ``service`` selects services by ``app`` and a port named ``metrics``
    (ServiceMonitor); ``None`` means the job is not scraped this way in Kubernetes.
    """

    name: str
    port: int
    compose_host: str
    description: str
    service: str  # the platform service it watches: the `service` label of its alerts
    metrics_path: str = "/metrics"
    k8s_kind: Literal["pod", "service"] | None = None
    k8s_app: str = ""


JOBS: tuple[ScrapeJob, ...] = (
    ScrapeJob(
        "api-gateway", 8080, "api-gateway", "Spring Cloud Gateway (micrometer, HikariCP)",
        service="api-gateway", metrics_path="/actuator/prometheus", k8s_kind="pod", k8s_app="api-gateway",
    ),
    ScrapeJob(
        "ml-inference", 8501, "ml-inference", "TensorFlow Serving's own metrics (REST port)",
        service="ml-inference", metrics_path="/monitoring/prometheus/metrics",
        k8s_kind="pod", k8s_app="ml-inference",
    ),
    ScrapeJob(
        "inference-exporter", 9471, "inference-exporter",
        "medobs inference sidecar: model status, probe, proxy, bridged TF Serving metrics",
        service="ml-inference", k8s_kind="pod", k8s_app="ml-inference",
    ),
    ScrapeJob(
        "postgresql", 9187, "postgres-exporter", "prometheus-postgres-exporter",
        service="postgresql", k8s_kind="service", k8s_app="postgres-exporter",
    ),
    ScrapeJob(
        "redis", 9121, "redis-exporter", "prometheus-redis-exporter",
        service="redis", k8s_kind="service", k8s_app="redis-exporter",
    ),
    ScrapeJob(
        "rabbitmq", 9419, "rabbitmq-exporter", "medobs queue and dead-letter-queue exporter",
        service="rabbitmq", k8s_kind="service", k8s_app="rabbitmq-exporter",
    ),
    ScrapeJob(
        "gpu", 9400, "gpu-exporter", "medobs NVML GPU exporter (a DaemonSet on GPU nodes)",
        service="gpu", k8s_kind="pod", k8s_app="gpu-exporter",
    ),
    ScrapeJob(
        "node", 9100, "node-exporter",
        "prometheus-node-exporter: host metrics and the textfile collector (backup freshness)",
        service="node", k8s_kind="pod", k8s_app="node-exporter",
    ),
    ScrapeJob("prometheus", 9090, "prometheus", "Prometheus itself", service="monitoring"),
    ScrapeJob("alertmanager", 9093, "alertmanager", "Alertmanager", service="monitoring"),
)

JOB_NAMES = tuple(job.name for job in JOBS)


def job(name: str) -> ScrapeJob:
    for candidate in JOBS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def _static_job(job: ScrapeJob, address: str) -> dict[str, Any]:
    return {
        "job_name": job.name,
        "metrics_path": job.metrics_path,
        "static_configs": [{"targets": [address]}],
    }


def _kubernetes_job(job: ScrapeJob) -> dict[str, Any]:
    if job.k8s_kind == "pod":
        meta = "__meta_kubernetes_pod"
        selection = [
            {"source_labels": [f"{meta}_label_app"], "action": "keep", "regex": job.k8s_app},
            {"source_labels": [f"{meta}_container_port_number"], "action": "keep", "regex": str(job.port)},
            {"source_labels": [f"{meta}_phase"], "action": "drop", "regex": "Pending|Succeeded|Failed"},
        ]
        role = "pod"
    else:
        meta = "__meta_kubernetes_service"
        selection = [
            {"source_labels": [f"{meta}_label_app"], "action": "keep", "regex": job.k8s_app},
            {"source_labels": ["__meta_kubernetes_endpoint_port_name"], "action": "keep", "regex": "metrics"},
        ]
        role = "endpoints"
    identity = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
    ]
    return {
        "job_name": job.name,
        "metrics_path": job.metrics_path,
        "kubernetes_sd_configs": [{"role": role, "namespaces": {"names": [NAMESPACE]}}],
        "relabel_configs": selection + identity,
    }


def prometheus_config(flavour: Flavour, ports: dict[str, int] | None = None) -> dict[str, Any]:
    """The whole prometheus.yml for a flavour.

    ``ports`` overrides loopback ports by job name (native flavour only; the local stack uses
    it to run beside another stack).
    """
    ports = ports or {}
    if flavour == "native":
        scrape_configs = [_static_job(j, f"127.0.0.1:{ports.get(j.name, j.port)}") for j in JOBS]
        alertmanager = f"127.0.0.1:{ports.get('alertmanager', job('alertmanager').port)}"
    elif flavour == "compose":
        scrape_configs = [_static_job(j, f"{j.compose_host}:{j.port}") for j in JOBS]
        alertmanager = f"alertmanager:{job('alertmanager').port}"
    else:
        scrape_configs = [_kubernetes_job(j) for j in JOBS if j.k8s_kind]
        alertmanager = f"alertmanager-operated.{MONITORING_NAMESPACE}.svc:9093"
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": EVALUATION_INTERVAL,
            "external_labels": {"platform": "medical-platform"},
        },
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": scrape_configs,
    }


def _monitor_object(job: ScrapeJob) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"path": job.metrics_path, "interval": SCRAPE_INTERVAL}
    metadata = {
        "name": job.name,
        "namespace": MONITORING_NAMESPACE,
        "labels": {"app.kubernetes.io/part-of": "medobs"},
    }
    spec: dict[str, Any] = {
        "namespaceSelector": {"matchNames": [NAMESPACE]},
        "selector": {"matchLabels": {"app": job.k8s_app}},
    }
    if job.k8s_kind == "pod":
        endpoint["portNumber"] = job.port
        spec["podMetricsEndpoints"] = [endpoint]
        kind = "PodMonitor"
    else:
        endpoint["port"] = "metrics"
        spec["endpoints"] = [endpoint]
        kind = "ServiceMonitor"
    # The job label is the ScrapeJob name, as in the other flavours, so alerts and dashboards agree.
    endpoint["relabelings"] = [{"action": "replace", "targetLabel": "job", "replacement": job.name}]
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": kind, "metadata": metadata, "spec": spec}


def monitor_objects() -> list[dict[str, Any]]:
    """prometheus-operator PodMonitor / ServiceMonitor objects, one per Kubernetes job."""
    return [_monitor_object(j) for j in JOBS if j.k8s_kind]


def build_files() -> dict[str, str]:
    """Files under build/ that this module owns."""
    source = "medobs/scrape.py"
    files = {
        f"prometheus/prometheus-{flavour}.yml": to_yaml(prometheus_config(flavour), source=source)
        for flavour in FLAVOURS
    }
    files["k8s/monitors.yaml"] = to_yaml_documents(monitor_objects(), source=source)
    return files
