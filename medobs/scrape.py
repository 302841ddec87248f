"""Prometheus scrape configuration for the platform's jobs, in three flavours.

- ``compose``: static targets by docker-compose service name;
- ``native``: static loopback targets for the local stack (``medobs stack up``);
- ``kubernetes``: ``kubernetes_sd_configs`` with the platform's relabelling (keep ``app=...``),
  plus prometheus-operator ``PodMonitor`` / ``ServiceMonitor`` objects.

The cluster's own telemetry (cAdvisor through the kubelet, kube-state-metrics, cert-manager) is
scraped where it lives in a cluster; in the native and compose flavours the platform simulator
(``medobs simulate``) stands in for it.

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


def _scrape_options(job: ScrapeJob) -> dict[str, Any]:
    """What every flavour of a job shares besides its targets."""
    options: dict[str, Any] = {"job_name": job.name, "metrics_path": job.metrics_path}
    if job.honor_labels:
        options["honor_labels"] = True
    if not job.honor_timestamps:
        options["honor_timestamps"] = False
    if job.platform_namespace_only:
        options["metric_relabel_configs"] = [{"source_labels": ["namespace"], "action": "keep", "regex": NAMESPACE}]
    return options


def _static_job(job: ScrapeJob, addresses: list[str]) -> dict[str, Any]:
    return {**_scrape_options(job), "static_configs": [{"targets": addresses}]}


def _meta_label(label: str) -> str:
    """A Kubernetes label as discovery's meta label: ``app.kubernetes.io/name`` -> ``app_kubernetes_io_name``."""
    return "".join(c if c.isalnum() else "_" for c in label)


def _kubernetes_job(job: ScrapeJob) -> dict[str, Any]:
    options = _scrape_options(job)
    if job.k8s_kind == "node":
        return {
            **options,
            "scheme": "https",
            "authorization": {"credentials_file": f"{SERVICE_ACCOUNT}/token"},
            "tls_config": {"ca_file": f"{SERVICE_ACCOUNT}/ca.crt"},
            "kubernetes_sd_configs": [{"role": "node"}],
            "relabel_configs": [{"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"}],
        }
    label = _meta_label(job.k8s_label)
    if job.k8s_kind == "pod":
        meta = "__meta_kubernetes_pod"
        selection = [
            {"source_labels": [f"{meta}_label_{label}"], "action": "keep", "regex": job.k8s_app},
            {"source_labels": [f"{meta}_container_port_number"], "action": "keep", "regex": str(job.port)},
            {"source_labels": [f"{meta}_phase"], "action": "drop", "regex": "Pending|Succeeded|Failed"},
        ]
        role = "pod"
    else:
        meta = "__meta_kubernetes_service"
        selection = [
            {"source_labels": [f"{meta}_label_{label}"], "action": "keep", "regex": job.k8s_app},
            {"source_labels": ["__meta_kubernetes_endpoint_port_name"], "action": "keep", "regex": job.k8s_port_name},
        ]
        role = "endpoints"
    # A job that honours the target's labels describes other pods: its own pod must not label them.
    identity = [] if job.honor_labels else [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
    ]
    return {
        **options,
        "kubernetes_sd_configs": [{"role": role, "namespaces": {"names": [job.k8s_namespace]}}],
        "relabel_configs": selection + identity,
    }


def prometheus_config(
    flavour: Flavour, ports: dict[str, int] | None = None, scrape_interval: str = SCRAPE_INTERVAL
) -> dict[str, Any]:
    """The whole prometheus.yml for a flavour.

    ``ports`` overrides loopback ports by target name (:data:`NATIVE_PORTS`; native flavour
    only; the local stack uses it to run beside another stack); ``scrape_interval`` is also the
    evaluation interval when it differs from the platform's 15s (a test stack that wants faster
    scrapes).
    """
    ports = ports or {}
    if flavour == "native":
        scrape_configs = [
            _static_job(j, [f"127.0.0.1:{ports.get(name, port)}" for name, port in j.native_ports().items()])
            for j in JOBS
        ]
        alertmanager = f"127.0.0.1:{ports.get('alertmanager', job('alertmanager').port)}"
    elif flavour == "compose":
        scrape_configs = [_static_job(j, j.compose_targets()) for j in JOBS]
        alertmanager = f"alertmanager:{job('alertmanager').port}"
    else:
        scrape_configs = [_kubernetes_job(j) for j in JOBS if j.k8s_kind]
        alertmanager = f"alertmanager-operated.{MONITORING_NAMESPACE}.svc:9093"
    evaluation_interval = EVALUATION_INTERVAL if scrape_interval == SCRAPE_INTERVAL else scrape_interval
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
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
        "namespaceSelector": {"matchNames": [job.k8s_namespace]},
        "selector": {"matchLabels": {job.k8s_label: job.k8s_app}},
    }
    if job.k8s_kind == "pod":
        endpoint["portNumber"] = job.port
        spec["podMetricsEndpoints"] = [endpoint]
        kind = "PodMonitor"
    else:
        endpoint["port"] = job.k8s_port_name
        spec["endpoints"] = [endpoint]
        kind = "ServiceMonitor"
    if job.k8s_kind == "node":
        endpoint["scheme"] = "https"
        endpoint["bearerTokenFile"] = f"{SERVICE_ACCOUNT}/token"
        endpoint["tlsConfig"] = {"caFile": f"{SERVICE_ACCOUNT}/ca.crt"}
    if job.honor_labels:
        endpoint["honorLabels"] = True
    if not job.honor_timestamps:
        endpoint["honorTimestamps"] = False
    if job.platform_namespace_only:
        endpoint["metricRelabelings"] = [
            {"sourceLabels": ["namespace"], "action": "keep", "regex": NAMESPACE}
        ]
    # The job label is the ScrapeJob name, as in the other flavours, so alerts and dashboards agree.
    endpoint["relabelings"] = [{"action": "replace", "targetLabel": "job", "replacement": job.name}]
    if job.honor_labels and job.k8s_kind == "service":
        # The operator labels targets with the exporter's own pod and service; kube-prometheus drops them.
        endpoint["relabelings"].append({"action": "labeldrop", "regex": "pod|service|endpoint|namespace|container"})
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
