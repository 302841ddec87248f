"""The platform's scrape jobs: every target Prometheus scrapes, with its port, labels and namespace.

One list (:data:`JOBS`) from which the scrape configurations, the Kubernetes monitors and
manifests, the alerts' job names and the local stack's ports are all derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from medobs.core import site

SCRAPE_INTERVAL = "15s"
EVALUATION_INTERVAL = "15s"
#: The default site's namespace: the one the platform simulator's cluster series carry. Generators
#: call :func:`namespace` instead, which follows the site file.
NAMESPACE = site.DEFAULT.namespace
#: Stands for "the site's namespace" in :attr:`ScrapeJob.k8s_namespace` (read when generating).
PLATFORM = ""
#: Stands for "the monitoring namespace of the site" (kube-prometheus-stack's) in ``k8s_namespace``.
MONITORING = "<monitoring>"

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
    #: :data:`PLATFORM` (the site's namespace), :data:`MONITORING` or a fixed namespace.
    k8s_namespace: str = PLATFORM
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
    #: The job kube-prometheus-stack scrapes the same target with (``kubelet``, ``kube_state_metrics``,
    #: ``node_exporter``: a field of :class:`medobs.core.site.KubePrometheusStackJobs`), if any.
    kube_prometheus_stack_job: str | None = None
    #: A medobs exporter (``--web.config.file``): scraped over TLS when the site has ``exporter_tls``.
    medobs_exporter: bool = False

    @property
    def namespace(self) -> str:
        """The namespace of the job's Kubernetes targets for the active site."""
        return {PLATFORM: namespace(), MONITORING: monitoring_namespace()}.get(self.k8s_namespace, self.k8s_namespace)

    @property
    def scraped_by_kube_prometheus_stack(self) -> bool:
        """True when the site says kube-prometheus-stack already scrapes this job's targets."""
        return self.kube_prometheus_stack_job is not None and site.current().kube_prometheus_stack.scrapes_cluster

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
        service="ml-inference", k8s_kind="pod", k8s_app="ml-inference", medobs_exporter=True,
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
        service="rabbitmq", k8s_kind="service", k8s_app="rabbitmq-exporter", medobs_exporter=True,
    ),
    ScrapeJob(
        "gpu", 9400, "gpu-exporter", "medobs NVML GPU exporter (a DaemonSet on GPU nodes)",
        service="gpu", k8s_kind="pod", k8s_app="gpu-exporter", medobs_exporter=True,
    ),
    ScrapeJob(
        "node", 9100, "node-exporter",
        "prometheus-node-exporter: host metrics and the textfile collector (backup freshness)",
        service="node", k8s_kind="pod", k8s_app="node-exporter", kube_prometheus_stack_job="node_exporter",
    ),
    ScrapeJob(
        "cadvisor", 10250, "simulator", "cAdvisor's container metrics, served by each node's kubelet",
        service="kubernetes", metrics_path="/metrics/cadvisor", k8s_kind="node", k8s_app="kubelet",
        k8s_label="app.kubernetes.io/name", k8s_namespace=KUBELET_SERVICE_NAMESPACE, k8s_port_name="https-metrics",
        honor_labels=True, honor_timestamps=False, platform_namespace_only=True, kube_prometheus_stack_job="kubelet",
    ),
    ScrapeJob(
        "kube-state-metrics", 8080, "simulator", "kube-state-metrics: deployments, pods, restarts, HPAs",
        service="kubernetes", k8s_kind="service", k8s_app="kube-state-metrics",
        k8s_label="app.kubernetes.io/name", k8s_namespace=MONITORING, k8s_port_name="http",
        local_port=8090, honor_labels=True, platform_namespace_only=True,
        kube_prometheus_stack_job="kube_state_metrics",
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


def namespace() -> str:
    """The namespace of the platform and of every generated object (the site's ``namespace``)."""
    return site.current().namespace


def monitoring_namespace() -> str:
    """Where kube-prometheus-stack (Prometheus, Alertmanager, kube-state-metrics) runs."""
    return site.current().kube_prometheus_stack.namespace


def job_label(name: str) -> str:
    """The ``job`` label value of the series of scrape job ``name`` for the active site: the job's own
    name, or kube-prometheus-stack's job (``kubelet``, ``kube-state-metrics``, ``node-exporter``)
    when the site says kube-prometheus-stack scrapes the cluster."""
    scrape_job = job(name)
    if not scrape_job.scraped_by_kube_prometheus_stack:
        return scrape_job.name
    return getattr(site.current().kube_prometheus_stack.jobs, scrape_job.kube_prometheus_stack_job or "")


def job_matchers(name: str) -> str:
    """PromQL label matchers selecting the series of scrape job ``name``: ``job="cadvisor"``, or
    ``job="kubelet", metrics_path="/metrics/cadvisor"`` where kube-prometheus-stack's kubelet job
    scrapes cAdvisor beside the kubelet's own endpoints (its ``metrics_path`` label tells them apart)."""
    scrape_job = job(name)
    matchers = f'job="{job_label(name)}"'
    if scrape_job.scraped_by_kube_prometheus_stack and scrape_job.k8s_kind == "node":
        matchers += f', metrics_path="{scrape_job.metrics_path}"'
    return matchers


def own_jobs() -> tuple[ScrapeJob, ...]:
    """The jobs medobs generates scrape configurations and monitors for (all but those
    kube-prometheus-stack scrapes already, when the site says so)."""
    return tuple(j for j in JOBS if not j.scraped_by_kube_prometheus_stack)


def kubernetes_metadata(name: str, labels: dict[str, str] | None = None, *, picked_up: bool = False) -> dict[str, Any]:
    """``metadata`` of a generated Kubernetes object in the site's namespace, labelled as part of
    medobs; ``picked_up`` adds ``release: <kube_prometheus_stack.release>``, the label
    kube-prometheus-stack's Prometheus selects PrometheusRules and monitors by."""
    all_labels = {"app.kubernetes.io/part-of": "medobs", **(labels or {})}
    if picked_up:
        all_labels["release"] = site.current().kube_prometheus_stack.release
    return {"name": name, "namespace": namespace(), "labels": all_labels}
