"""The platform's scrape jobs: every target Prometheus scrapes, with its port, labels and namespace.

One list (:data:`JOBS`) from which the scrape configurations, the Kubernetes monitors and
manifests, the alerts' job names and the local stack's ports are all derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SCRAPE_INTERVAL = "15s"
EVALUATION_INTERVAL = "15s"
NAMESPACE = "medical-platform"
#: Where prometheus-operator objects and the monitoring stack live in the cluster.
MONITORING_NAMESPACE = "monitoring"

Flavour = Literal["compose", "native", "kubernetes"]
FLAVOURS: tuple[Flavour, ...] = ("compose", "native", "kubernetes")
#: How Prometheus in a pod authenticates to the kubelet: its service account's token and CA.
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: The Service prometheus-operator keeps for the kubelets (its --kubelet-service flag), as in kube-prometheus.
KUBELET_SERVICE_NAMESPACE = "kube-system"


@dataclass(frozen=True)
class OtherTarget:
    """A further target of a job in the native and compose flavours, such as the replica's
    exporter beside the primary's: ``name`` is its compose service (listening on the job's port)
    and the name of its port in the local stack, where it listens on ``local_port``."""

    name: str
    local_port: int


@dataclass(frozen=True)
class ScrapeJob:
    """One Prometheus job and where its targets are in each flavour.

    ``k8s_kind`` ``pod`` selects pods by their ``k8s_label`` (``app``) and a container port
    number (PodMonitor); ``service`` selects services in ``k8s_namespace`` by ``k8s_label`` and
    the port named ``k8s_port_name`` (ServiceMonitor); ``node`` scrapes every node's kubelet over
    HTTPS with the service account's token and CA (the ServiceMonitor of prometheus-operator's
    kubelet Service); ``None`` means the job is not scraped this way in Kubernetes.

    ``honor_labels`` keeps the ``namespace`` / ``pod`` / ``container`` labels the target writes
    about other objects (cAdvisor, kube-state-metrics, cert-manager) instead of labelling them
    with the target's own pod; ``platform_namespace_only`` drops the series of other namespaces.
    """

    name: str
    port: int
    compose_host: str
    description: str
    service: str  # the platform service it watches: the `service` label of its alerts
    metrics_path: str = "/metrics"
    k8s_kind: Literal["pod", "service", "node"] | None = None
    k8s_app: str = ""
    k8s_label: str = "app"
    k8s_namespace: str = NAMESPACE
    k8s_port_name: str = "metrics"
    #: Where the local stand-in listens (native and compose) when ``port`` is another job's there.
    local_port: int | None = None
    honor_labels: bool = False
    #: False for cAdvisor: its samples carry timestamps, which would keep vanished containers'
    #: series alive for five minutes (no staleness markers), as kube-prometheus notes.
    honor_timestamps: bool = True
    platform_namespace_only: bool = False
    #: Targets beside the first in the native and compose flavours (in Kubernetes, the selected
    #: service's endpoints are the targets, however many).
    other_targets: tuple[OtherTarget, ...] = ()

    @property
    def stand_in_port(self) -> int:
        """The port of the job's target in the native and compose flavours."""
        return self.local_port or self.port

    def native_ports(self) -> dict[str, int]:
        """Each native target's port by name: the job's own name for the first."""
        return {self.name: self.stand_in_port, **{t.name: t.local_port for t in self.other_targets}}

    def compose_targets(self) -> list[str]:
        return [f"{host}:{self.stand_in_port}" for host in (self.compose_host, *(t.name for t in self.other_targets))]


JOBS: tuple[ScrapeJob, ...] = (
    ScrapeJob(
        "api-gateway", 8080, "simulator", "Spring Cloud Gateway (micrometer, HikariCP)",
        service="api-gateway", metrics_path="/actuator/prometheus", k8s_kind="pod", k8s_app="api-gateway",
    ),
    ScrapeJob(
        "ml-inference", 8501, "simulator", "TensorFlow Serving's own metrics (REST port)",
        service="ml-inference", metrics_path="/monitoring/prometheus/metrics",
        k8s_kind="pod", k8s_app="ml-inference",
    ),
    ScrapeJob(
        "inference-exporter", 9471, "inference-exporter",
        "medobs inference sidecar: model status, probe, proxy, bridged TF Serving metrics",
        service="ml-inference", k8s_kind="pod", k8s_app="ml-inference",
    ),
    ScrapeJob(
        "postgresql", 9187, "postgres-exporter",
        "prometheus-postgres-exporter, one per server: the primary's and the replica's (in Kubernetes, "
        "the postgres-exporter service selects both exporters' pods)",
        service="postgresql", k8s_kind="service", k8s_app="postgres-exporter",
        other_targets=(OtherTarget("postgres-replica-exporter", 9188),),
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
    ScrapeJob(
        "cadvisor", 10250, "simulator", "cAdvisor's container metrics, served by each node's kubelet",
        service="kubernetes", metrics_path="/metrics/cadvisor", k8s_kind="node", k8s_app="kubelet",
        k8s_label="app.kubernetes.io/name", k8s_namespace=KUBELET_SERVICE_NAMESPACE, k8s_port_name="https-metrics",
        honor_labels=True, honor_timestamps=False, platform_namespace_only=True,
    ),
    ScrapeJob(
        "kube-state-metrics", 8080, "simulator", "kube-state-metrics: deployments, pods, restarts, HPAs",
        service="kubernetes", k8s_kind="service", k8s_app="kube-state-metrics",
        k8s_label="app.kubernetes.io/name", k8s_namespace=MONITORING_NAMESPACE, k8s_port_name="http",
        local_port=8090, honor_labels=True, platform_namespace_only=True,
    ),
    ScrapeJob(
        "cert-manager", 9402, "simulator", "cert-manager's controller: certificate expiry and readiness",
        service="kubernetes", k8s_kind="service", k8s_app="cert-manager", k8s_label="app.kubernetes.io/name",
        k8s_namespace="cert-manager", k8s_port_name="http-metrics", honor_labels=True,
    ),
    ScrapeJob("prometheus", 9090, "prometheus", "Prometheus itself", service="monitoring"),
    ScrapeJob("alertmanager", 9093, "alertmanager", "Alertmanager", service="monitoring"),
)

JOB_NAMES = tuple(job.name for job in JOBS)
#: The proxy port of the inference sidecar (TF Serving REST is 8501 in the same pod); not scraped.
INFERENCE_PROXY_PORT = 8502
#: The port of every native target, by name (a job's name for its first target).
NATIVE_PORTS = {name: port for job in JOBS for name, port in job.native_ports().items()}


def job(name: str) -> ScrapeJob:
    for candidate in JOBS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
