"""Prometheus scrape configuration for the platform's jobs, in three flavours.

- ``compose``: static targets by docker-compose service name;
- ``native``: static loopback targets for the local stack (``medobs stack up``);
- ``kubernetes``: ``kubernetes_sd_configs`` with the platform's relabelling (keep ``app=...``),
  plus prometheus-operator ``PodMonitor`` / ``ServiceMonitor`` objects.

The cluster's own telemetry (cAdvisor through the kubelet, kube-state-metrics, cert-manager) is
scraped where it lives in a cluster; in the native and compose flavours the platform simulator
(``medobs simulate``) stands in for it.

All three come from :data:`JOBS`, so a job added here reaches every flavour. The namespaces, the
``release`` label of the monitors and which jobs kube-prometheus-stack already scrapes (then
neither a Kubernetes scrape job nor a monitor is generated for them) come from the site
(:mod:`medobs.core.site`).
"""

from __future__ import annotations

from typing import Any

from medobs.core import site
from medobs.core.output import to_yaml, to_yaml_documents
from medobs.core.scrape_jobs import (
    EVALUATION_INTERVAL,
    FLAVOURS,
    JOBS,
    SCRAPE_INTERVAL,
    SERVICE_ACCOUNT,
    Flavour,
    ScrapeJob,
    job,
    kubernetes_metadata,
    monitoring_namespace,
    namespace,
    own_jobs,
)


def _scrape_options(job: ScrapeJob) -> dict[str, Any]:
    """What every flavour of a job shares besides its targets."""
    options: dict[str, Any] = {"job_name": job.name, "metrics_path": job.metrics_path}
    if job.honor_labels:
        options["honor_labels"] = True
    if not job.honor_timestamps:
        options["honor_timestamps"] = False
    if job.platform_namespace_only:
        options["metric_relabel_configs"] = [{"source_labels": ["namespace"], "action": "keep", "regex": namespace()}]
    return options


def _exporter_tls(job: ScrapeJob) -> site.ExporterTLS | None:
    """The site's TLS settings when ``job`` is a medobs exporter and the site serves them over TLS."""
    return site.current().exporter_tls if job.medobs_exporter else None


def _secret_reference(secret: site.SecretKey) -> dict[str, str]:
    return {"name": secret.name, "key": secret.key}


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
    tls = _exporter_tls(job)
    if tls is not None:
        # Where prometheus-operator mounts the Secrets of a Prometheus's spec.secrets. Basic auth
        # needs the user name inline in a plain Prometheus: the monitors carry it (docs/kubernetes.md).
        tls_config = {"ca_file": f"/etc/prometheus/secrets/{tls.ca.name}/{tls.ca.key}"}
        if tls.server_name:
            tls_config["server_name"] = tls.server_name
        options.update(scheme="https", tls_config=tls_config)
    return {
        **options,
        "kubernetes_sd_configs": [{"role": role, "namespaces": {"names": [job.namespace]}}],
        "relabel_configs": selection + identity,
    }


def prometheus_config(
    flavour: Flavour, ports: dict[str, int] | None = None, scrape_interval: str = SCRAPE_INTERVAL,
    job_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole prometheus.yml for a flavour.

    ``ports`` overrides loopback ports by target name (:data:`NATIVE_PORTS`; native flavour
    only; the local stack uses it to run beside another stack); ``scrape_interval`` is also the
    evaluation interval when it differs from the platform's 15s (a test stack that wants faster
    scrapes). ``job_options`` adds scrape options by job name (native flavour only: the local
    stack's ``scheme``, ``tls_config`` and ``basic_auth`` for its exporters behind TLS).
    """
    ports = ports or {}
    if flavour == "native":
        scrape_configs = [
            _static_job(j, [f"127.0.0.1:{ports.get(name, port)}" for name, port in j.native_ports().items()])
            | (job_options or {}).get(j.name, {})
            for j in JOBS
        ]
        alertmanager = f"127.0.0.1:{ports.get('alertmanager', job('alertmanager').port)}"
    elif flavour == "compose":
        scrape_configs = [_static_job(j, j.compose_targets()) for j in JOBS]
        alertmanager = f"alertmanager:{job('alertmanager').port}"
    else:
        scrape_configs = [_kubernetes_job(j) for j in own_jobs() if j.k8s_kind]
        alertmanager = f"alertmanager-operated.{monitoring_namespace()}.svc:9093"
    evaluation_interval = EVALUATION_INTERVAL if scrape_interval == SCRAPE_INTERVAL else scrape_interval
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            "external_labels": {"platform": site.current().cluster},
        },
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": scrape_configs,
    }


def _monitor_object(job: ScrapeJob) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"path": job.metrics_path, "interval": SCRAPE_INTERVAL}
    spec: dict[str, Any] = {"selector": {"matchLabels": {job.k8s_label: job.k8s_app}}}
    if job.k8s_namespace:
        # Targets elsewhere; without a namespaceSelector a monitor selects in its own namespace
        # (the platform's), which a kustomize overlay's namespace then moves along with it.
        spec["namespaceSelector"] = {"matchNames": [job.namespace]}
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
    tls = _exporter_tls(job)
    if tls is not None:
        endpoint["scheme"] = "https"
        endpoint["tlsConfig"] = {"ca": {"secret": _secret_reference(tls.ca)}}
        if tls.server_name:
            endpoint["tlsConfig"]["serverName"] = tls.server_name
        if tls.basic_auth is not None:
            endpoint["basicAuth"] = {"username": _secret_reference(tls.basic_auth.username),
                                     "password": _secret_reference(tls.basic_auth.password)}
    if job.honor_labels:
        endpoint["honorLabels"] = True
    if not job.honor_timestamps:
        endpoint["honorTimestamps"] = False
    if job.platform_namespace_only:
        endpoint["metricRelabelings"] = [
            {"sourceLabels": ["namespace"], "action": "keep", "regex": namespace()}
        ]
    # The job label is the ScrapeJob name, as in the other flavours, so alerts and dashboards agree.
    endpoint["relabelings"] = [{"action": "replace", "targetLabel": "job", "replacement": job.name}]
    if job.honor_labels and job.k8s_kind == "service":
        # The operator labels targets with the exporter's own pod and service; kube-prometheus drops them.
        endpoint["relabelings"].append({"action": "labeldrop", "regex": "pod|service|endpoint|namespace|container"})
    metadata = kubernetes_metadata(job.name, picked_up=True)
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": kind, "metadata": metadata, "spec": spec}


def monitor_objects() -> list[dict[str, Any]]:
    """prometheus-operator PodMonitor / ServiceMonitor objects, one per Kubernetes job that
    kube-prometheus-stack does not scrape already."""
    return [_monitor_object(j) for j in own_jobs() if j.k8s_kind]


def build_files() -> dict[str, str]:
    """Files under build/ that this module owns."""
    source = "medobs/deploy/scrape.py"
    files = {
        f"prometheus/prometheus-{flavour}.yml": to_yaml(prometheus_config(flavour), source=source)
        for flavour in FLAVOURS
    }
    files["k8s/monitors.yaml"] = to_yaml_documents(monitor_objects(), source=source)
    return files
