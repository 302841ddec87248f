"""Which pod holds which GPU: the kubelet pod-resources API, refreshed in the background.

Instead of copying every GPU series once per pod (dcgm-exporter's way, whose pod labels go
missing when the kubelet call in the scrape path is slow), one join metric says who holds a
GPU; PromQL joins it where needed, the join metric on the left (a time-sliced GPU has one series
per container)::

    medobs_gpu_pod_info{uuid="GPU-8a2c...",namespace="medical-platform",pod="ml-inference-7d9f",container="tf-serving"} 1.0

    medobs_gpu_pod_info * on (uuid) group_left (gpu) medobs_gpu_utilization_ratio

Device ids from the NVIDIA device plugin are matched to GPUs by UUID (``GPU-...``), MIG UUID
(``MIG-...``, attributed to its parent GPU), device name (``nvidia0``, GKE) or index (``0``,
the plugin's ``index`` strategy); time-slicing replicas (``GPU-...::3``) and GKE suffixes
(``nvidia0/vgpu1``, ``nvidia0/gi2``) are cut off first. Without the kubelet socket attribution is
off, said once in the log.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from prometheus_client.core import Metric

from exporters.gpu.background import BackgroundHealth, Periodic
from exporters.gpu.podresources import Allocation, list_allocations
from exporters.gpu.session import Device
from medobs.core.catalog import gpu
from medobs.core.runtime import gauge

log = logging.getLogger("medobs.exporter.gpu")

TASK = "pods"
#: Resource names of NVIDIA's device plugin: nvidia.com/gpu, nvidia.com/mig-1g.5gb, renamed shares ...
RESOURCE_PREFIX = "nvidia.com/"


class PodAttribution:
    """Refreshes the kubelet's device allocations every ``interval`` seconds in a thread."""

    def __init__(self, socket_path: str, interval: float, health: BackgroundHealth, timeout: float = 5.0):
        self.socket_path, self.timeout = socket_path, timeout
        self._periodic = Periodic(TASK, interval, self._refresh, health)
        self._lock = threading.Lock()
        self._allocations: tuple[Allocation, ...] = ()
        self._off_said = False

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def allocations(self) -> tuple[Allocation, ...]:
        with self._lock:
            return self._allocations

    def _refresh(self) -> bool:
        if not os.path.exists(self.socket_path):
            with self._lock:
                self._allocations = ()
            if not self._off_said:
                log.info("pod attribution off: no kubelet pod-resources socket at %s", self.socket_path)
                self._off_said = True
            return False
        if self._off_said:
            log.info("pod attribution on: %s appeared", self.socket_path)
            self._off_said = False
        found = tuple(a for a in list_allocations(self.socket_path, self.timeout) if a.resource.startswith(RESOURCE_PREFIX))
        with self._lock:
            self._allocations = found
        return True


def device_key(device_id: str) -> str:
    """The part of a device plugin id that names the GPU (replica and GKE suffixes cut off)."""
    return device_id.split("::", 1)[0].split("/", 1)[0]


def attribute(
    allocations: Iterable[Allocation], devices: Iterable[Device], mig_parents: dict[str, str]
) -> set[tuple[str, str, str, str]]:
    """(uuid, namespace, pod, container) for every allocation that names one of ``devices``."""
    by_key: dict[str, str] = dict(mig_parents)
    for device in devices:
        by_key.update({device.uuid: device.uuid, device.device_name: device.uuid, str(device.index): device.uuid})
    held = set()
    for allocation in allocations:
        uuid = by_key.get(device_key(allocation.device_id))
        if uuid:
            held.add((uuid, allocation.namespace, allocation.pod, allocation.container))
    return held


def families(held: set[tuple[str, str, str, str]]) -> list[Metric]:
    info = gauge(gpu.POD_INFO)
    for labels in sorted(held):
        info.add_metric(list(labels), 1)
    return [info]
