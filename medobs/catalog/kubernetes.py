"""Kubernetes: cAdvisor (via the kubelet), kube-state-metrics and cert-manager."""

from medobs.catalog import metric

_CONTAINER = ("namespace", "pod", "container")
CPU = metric(
    "container_cpu_usage_seconds_total", "counter", "CPU time used by each container.",
    source="cadvisor", labels=_CONTAINER, unit="seconds",
)
MEMORY_WORKING_SET = metric(
    "container_memory_working_set_bytes", "gauge", "Working-set memory of each container.",
    source="cadvisor", labels=_CONTAINER, unit="bytes",
)
NETWORK_RECEIVE = metric(
    "container_network_receive_bytes_total", "counter", "Bytes received by each pod.",
    source="cadvisor", labels=("namespace", "pod", "interface"), unit="bytes",
)
NETWORK_TRANSMIT = metric(
    "container_network_transmit_bytes_total", "counter", "Bytes sent by each pod.",
    source="cadvisor", labels=("namespace", "pod", "interface"), unit="bytes",
)
FS_READS = metric(
    "container_fs_reads_bytes_total", "counter", "Bytes read from disk by each container.",
    source="cadvisor", labels=_CONTAINER + ("device",), unit="bytes",
)
FS_WRITES = metric(
    "container_fs_writes_bytes_total", "counter", "Bytes written to disk by each container.",
    source="cadvisor", labels=_CONTAINER + ("device",), unit="bytes",
)
RESTARTS = metric(
    "kube_pod_container_status_restarts_total", "counter", "Container restarts.",
    source="kube-state-metrics", labels=_CONTAINER,
)
DEPLOYMENT_READY = metric(
    "kube_deployment_status_replicas_ready", "gauge", "Ready replicas of each deployment.",
    source="kube-state-metrics", labels=("namespace", "deployment"),
)
DEPLOYMENT_DESIRED = metric(
    "kube_deployment_spec_replicas", "gauge", "Desired replicas of each deployment.",
    source="kube-state-metrics", labels=("namespace", "deployment"),
)
HPA_CURRENT = metric(
    "kube_horizontalpodautoscaler_status_current_replicas", "gauge", "Current replicas of each HPA.",
    source="kube-state-metrics", labels=("namespace", "horizontalpodautoscaler"),
)
HPA_MAX = metric(
    "kube_horizontalpodautoscaler_spec_max_replicas", "gauge", "Maximum replicas of each HPA.",
    source="kube-state-metrics", labels=("namespace", "horizontalpodautoscaler"),
)
CERT_EXPIRATION = metric(
    "certmanager_certificate_expiration_timestamp_seconds", "gauge",
    "Unix time at which each cert-manager certificate expires.",
    source="cert-manager", labels=("namespace", "name", "issuer_name", "issuer_kind"), unit="seconds",
)
