"""What the cluster's own exporters write about the simulated platform (:mod:`cluster`).

- :func:`cadvisor`: the kubelet's ``/metrics/cadvisor``: a series per running container and
  one per pod cgroup (``container=""``, the sum of every container the pod ran); network on
  the pod only; every sample stamped with the collection time, as cAdvisor does::

      container_cpu_usage_seconds_total{container="api-gateway",cpu="total",id="/kubepods/burstable/pod0f1e.../4c1d...",image="registry.med-diagnosis.com/platform/api-gateway:3.1.8",name="4c1d...",namespace="medical-platform",pod="api-gateway-x7b9kq2mzd-4wzrp"} 20734.1 1767225600000
      container_network_receive_bytes_total{container="",id="/kubepods/burstable/pod0f1e...",image="",interface="eth0",name="",namespace="medical-platform",pod="api-gateway-x7b9kq2mzd-4wzrp"} 3.1e+07 1767225600000

- :func:`kube_state_metrics`: kube-state-metrics v2 (``[STABLE]`` help texts)::

      kube_deployment_status_replicas_ready{namespace="medical-platform",deployment="api-gateway"} 3.0
      kube_pod_container_status_restarts_total{namespace="medical-platform",pod="ml-inference-...",uid="...",container="tensorflow-serving"} 4.0
      kube_horizontalpodautoscaler_spec_max_replicas{namespace="medical-platform",horizontalpodautoscaler="api-gateway-hpa"} 10.0

- :func:`cert_manager`: cert-manager's controller::

      certmanager_certificate_expiration_timestamp_seconds{name="api-tls-cert",namespace="medical-platform",issuer_name="letsencrypt-prod",issuer_kind="ClusterIssuer",issuer_group="cert-manager.io"} 1.77e+09
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.catalog import kubernetes as k8s
from medobs.core.scrape_jobs import NAMESPACE
from medobs.simulator.cluster import Cluster, Container, Pod

#: The disk cAdvisor reports block I/O on, and the pod's network interface.
DEVICE, INTERFACE = "/dev/nvme0n1", "eth0"
#: The pause container's working set, part of every pod cgroup.
PAUSE_MEMORY_BYTES = 600 * 1024
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
STABLE = "[STABLE] "


def _counter(entry: CatalogMetric, help_prefix: str = "") -> CounterMetricFamily:
    return CounterMetricFamily(entry.name, help_prefix + entry.help, labels=list(entry.labels))


def _gauge(entry: CatalogMetric, help_prefix: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(entry.name, help_prefix + entry.help, labels=list(entry.labels))


# -- cAdvisor ----------------------------------------------------------------------------------


def _cgroup_labels(pod: Pod, container: Container | None) -> dict[str, str]:
    """The kubelet's labels of a container's cgroup, or of the pod's own (``container=None``)."""
    if container is None:
        return {"container": "", "id": pod.cgroup, "image": "", "name": "", "namespace": NAMESPACE, "pod": pod.name}
    return {
        "container": container.spec.name, "id": f"{pod.cgroup}/{container.container_id}",
        "image": container.spec.image, "name": container.container_id, "namespace": NAMESPACE, "pod": pod.name,
    }


def cadvisor(cluster: Cluster, now: float) -> list[Metric]:
    families = {
        entry.name: _counter(entry) if entry.type == "counter" else _gauge(entry)
        for entry in (k8s.CPU, k8s.MEMORY_WORKING_SET, k8s.NETWORK_RECEIVE, k8s.NETWORK_TRANSMIT,
                      k8s.FS_READS, k8s.FS_WRITES)
    }

    def add(entry: CatalogMetric, labels: dict[str, str], value: float) -> None:
        families[entry.name].add_metric([labels[name] for name in entry.labels], value, timestamp=now)

    with cluster.observed(now):
        for pod in cluster.pods():
            running = [c for c in pod.containers.values() if c.running]
            cgroups: list[tuple[dict[str, str], float, float, float, float]] = [(
                _cgroup_labels(pod, None), pod.cpu_seconds,
                PAUSE_MEMORY_BYTES + sum(c.memory_bytes for c in running), pod.read_bytes, pod.written_bytes,
            )]
            cgroups += [(_cgroup_labels(pod, c), c.cpu_seconds, c.memory_bytes, c.read_bytes, c.written_bytes)
                        for c in running]
            for labels, cpu, memory, read, written in cgroups:
                add(k8s.CPU, {**labels, "cpu": "total"}, cpu)
                add(k8s.MEMORY_WORKING_SET, labels, memory)
                add(k8s.FS_READS, {**labels, "device": DEVICE}, read)
                add(k8s.FS_WRITES, {**labels, "device": DEVICE}, written)
            network = {**_cgroup_labels(pod, None), "interface": INTERFACE}
            add(k8s.NETWORK_RECEIVE, network, pod.received_bytes)
            add(k8s.NETWORK_TRANSMIT, network, pod.sent_bytes)
    return list(families.values())


# -- kube-state-metrics ------------------------------------------------------------------------


def kube_state_metrics(cluster: Cluster, now: float) -> list[Metric]:
    deployments = {entry: _gauge(entry, STABLE) for entry in (
        k8s.DEPLOYMENT_DESIRED, k8s.DEPLOYMENT_REPLICAS, k8s.DEPLOYMENT_READY,
        k8s.DEPLOYMENT_AVAILABLE, k8s.DEPLOYMENT_UNAVAILABLE)}
    autoscalers = {entry: _gauge(entry, STABLE) for entry in (k8s.HPA_MIN, k8s.HPA_MAX, k8s.HPA_CURRENT, k8s.HPA_DESIRED)}
    pod_info, phase, pod_ready = _gauge(k8s.POD_INFO, STABLE), _gauge(k8s.POD_PHASE, STABLE), _gauge(k8s.POD_READY, STABLE)
    restarts = _counter(k8s.RESTARTS, STABLE)
    container_ready, waiting = _gauge(k8s.CONTAINER_READY, STABLE), _gauge(k8s.CONTAINER_WAITING_REASON, STABLE)
    with cluster.observed(now):
        for deployment in cluster.deployments.values():
            name = [NAMESPACE, deployment.spec.name]
            replicas, ready = len(deployment.pods), deployment.ready_replicas
            for entry, value in ((k8s.DEPLOYMENT_DESIRED, replicas), (k8s.DEPLOYMENT_REPLICAS, replicas),
                                 (k8s.DEPLOYMENT_READY, ready), (k8s.DEPLOYMENT_AVAILABLE, ready),
                                 (k8s.DEPLOYMENT_UNAVAILABLE, replicas - ready)):
                deployments[entry].add_metric(name, value)
            scaler = deployment.autoscaler
            if scaler is not None:
                hpa = [NAMESPACE, scaler.spec.name]
                for entry, value in ((k8s.HPA_MIN, scaler.spec.min_replicas), (k8s.HPA_MAX, scaler.spec.max_replicas),
                                     (k8s.HPA_CURRENT, replicas), (k8s.HPA_DESIRED, scaler.desired)):
                    autoscalers[entry].add_metric(hpa, value)
        for pod in cluster.pods():
            identity = [NAMESPACE, pod.name, pod.uid]
            pod_info.add_metric(identity + [pod.host_ip, pod.pod_ip, pod.node, "ReplicaSet", pod.replicaset, "", "false"], 1)
            for value in POD_PHASES:
                phase.add_metric(identity + [value], float(value == "Running"))
            for condition in ("true", "false", "unknown"):
                pod_ready.add_metric(identity + [condition], float(condition == str(pod.ready).lower()))
            for container in pod.containers.values():
                labels = identity + [container.spec.name]
                restarts.add_metric(labels, container.restarts)
                container_ready.add_metric(labels, float(container.running and container.ready))
                if container.waiting_reason:
                    waiting.add_metric(labels + [container.waiting_reason], 1)
    return [*deployments.values(), *autoscalers.values(), pod_info, phase, pod_ready, restarts, container_ready, waiting]


# -- cert-manager ------------------------------------------------------------------------------


def cert_manager(cluster: Cluster, now: float) -> list[Metric]:
    expiration, renewal, ready = _gauge(k8s.CERT_EXPIRATION), _gauge(k8s.CERT_RENEWAL), _gauge(k8s.CERT_READY)
    with cluster.observed(now):
        cert = cluster.certificate
        issuer = [cert.issuer_name, cert.issuer_kind, cert.issuer_group]
        expiration.add_metric([cert.name, NAMESPACE, *issuer], cert.expiry)
        renewal.add_metric([cert.name, NAMESPACE, *issuer], cert.renewal)
        valid = now < cert.expiry
        for condition, value in (("True", valid), ("False", not valid), ("Unknown", False)):
            ready.add_metric([cert.name, NAMESPACE, condition, *issuer], float(value))
    return [expiration, renewal, ready]
