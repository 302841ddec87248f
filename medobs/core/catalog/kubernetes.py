"""Kubernetes: cAdvisor (via the kubelet), kube-state-metrics and cert-manager.

Help texts and labels are the upstream ones (cAdvisor's metrics/prometheus.go with the
kubelet's container labels; kube-state-metrics v2 without its ``[STABLE]`` prefix; cert-manager's
controller metrics), so the simulator that stands in for them writes what they write.
"""

from medobs.core.catalog import metric

#: The kubelet's labels on every cAdvisor series: the cgroup (``id``), the runtime's container
#: ``name`` and ``image``, and the pod's ``namespace`` / ``pod`` / ``container`` (empty for a pod's
#: own cgroup).
_CADVISOR = ("container", "id", "image", "name", "namespace", "pod")
CPU = metric(
    "container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.",
    source="cadvisor", labels=_CADVISOR + ("cpu",), unit="seconds",
)
MEMORY_WORKING_SET = metric(
    "container_memory_working_set_bytes", "gauge", "Current working set in bytes.",
    source="cadvisor", labels=_CADVISOR, unit="bytes",
)
NETWORK_RECEIVE = metric(
    "container_network_receive_bytes_total", "counter", "Cumulative count of bytes received",
    source="cadvisor", labels=_CADVISOR + ("interface",), unit="bytes",
)
NETWORK_TRANSMIT = metric(
    "container_network_transmit_bytes_total", "counter", "Cumulative count of bytes transmitted",
    source="cadvisor", labels=_CADVISOR + ("interface",), unit="bytes",
)
FS_READS = metric(
    "container_fs_reads_bytes_total", "counter", "Cumulative count of bytes read",
    source="cadvisor", labels=_CADVISOR + ("device",), unit="bytes",
)
FS_WRITES = metric(
    "container_fs_writes_bytes_total", "counter", "Cumulative count of bytes written",
    source="cadvisor", labels=_CADVISOR + ("device",), unit="bytes",
)

_POD = ("namespace", "pod", "uid")
_CONTAINER = _POD + ("container",)
_DEPLOYMENT = ("namespace", "deployment")
_HPA = ("namespace", "horizontalpodautoscaler")
RESTARTS = metric(
    "kube_pod_container_status_restarts_total", "counter", "The number of container restarts per container.",
    source="kube-state-metrics", labels=_CONTAINER,
)
CONTAINER_READY = metric(
    "kube_pod_container_status_ready", "gauge", "Describes whether the containers readiness check succeeded.",
    source="kube-state-metrics", labels=_CONTAINER,
)
CONTAINER_WAITING_REASON = metric(
    "kube_pod_container_status_waiting_reason", "gauge",
    "Describes the reason the container is currently in waiting state.",
    source="kube-state-metrics", labels=_CONTAINER + ("reason",),
)
POD_INFO = metric(
    "kube_pod_info", "gauge", "Information about pod.",
    source="kube-state-metrics",
    labels=_POD + ("host_ip", "pod_ip", "node", "created_by_kind", "created_by_name", "priority_class", "host_network"),
)
POD_PHASE = metric(
    "kube_pod_status_phase", "gauge", "The pods current phase.",
    source="kube-state-metrics", labels=_POD + ("phase",),
)
POD_READY = metric(
    "kube_pod_status_ready", "gauge", "Describes whether the pod is ready to serve requests.",
    source="kube-state-metrics", labels=_POD + ("condition",),
)
DEPLOYMENT_DESIRED = metric(
    "kube_deployment_spec_replicas", "gauge", "Number of desired pods for a deployment.",
    source="kube-state-metrics", labels=_DEPLOYMENT,
)
DEPLOYMENT_REPLICAS = metric(
    "kube_deployment_status_replicas", "gauge", "The number of replicas per deployment.",
    source="kube-state-metrics", labels=_DEPLOYMENT,
)
DEPLOYMENT_READY = metric(
    "kube_deployment_status_replicas_ready", "gauge", "The number of ready replicas per deployment.",
    source="kube-state-metrics", labels=_DEPLOYMENT,
)
DEPLOYMENT_AVAILABLE = metric(
    "kube_deployment_status_replicas_available", "gauge", "The number of available replicas per deployment.",
    source="kube-state-metrics", labels=_DEPLOYMENT,
)
DEPLOYMENT_UNAVAILABLE = metric(
    "kube_deployment_status_replicas_unavailable", "gauge", "The number of unavailable replicas per deployment.",
    source="kube-state-metrics", labels=_DEPLOYMENT,
)
HPA_MIN = metric(
    "kube_horizontalpodautoscaler_spec_min_replicas", "gauge",
    "Lower limit for the number of pods that can be set by the autoscaler, default 1.",
    source="kube-state-metrics", labels=_HPA,
)
HPA_MAX = metric(
    "kube_horizontalpodautoscaler_spec_max_replicas", "gauge",
    "Upper limit for the number of pods that can be set by the autoscaler; cannot be smaller than MinReplicas.",
    source="kube-state-metrics", labels=_HPA,
)
HPA_CURRENT = metric(
    "kube_horizontalpodautoscaler_status_current_replicas", "gauge",
    "Current number of replicas of pods managed by this autoscaler.",
    source="kube-state-metrics", labels=_HPA,
)
HPA_DESIRED = metric(
    "kube_horizontalpodautoscaler_status_desired_replicas", "gauge",
    "Desired number of replicas of pods managed by this autoscaler.",
    source="kube-state-metrics", labels=_HPA,
)

_CERTIFICATE = ("name", "namespace", "issuer_name", "issuer_kind", "issuer_group")
CERT_EXPIRATION = metric(
    "certmanager_certificate_expiration_timestamp_seconds", "gauge",
    "The date after which the certificate expires. Expressed as a Unix Epoch Time.",
    source="cert-manager", labels=_CERTIFICATE, unit="seconds",
)
CERT_RENEWAL = metric(
    "certmanager_certificate_renewal_timestamp_seconds", "gauge",
    "The number of seconds before expiration time the certificate should renew.",
    source="cert-manager", labels=_CERTIFICATE, unit="seconds",
)
CERT_READY = metric(
    "certmanager_certificate_ready_status", "gauge", "The ready status of the certificate.",
    source="cert-manager", labels=("name", "namespace", "condition", "issuer_name", "issuer_kind", "issuer_group"),
)
