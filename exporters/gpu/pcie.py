"""PCIe throughput, sampled in the background: each NVML read blocks about 20 ms.

Two reads per GPU would cost 320 ms a scrape on an 8-GPU node; here a thread samples every
``interval`` seconds and scrapes read the last values, with their age in
``medobs_gpu_background_age_seconds{task="pcie"}``::

    medobs_gpu_pcie_transmit_bytes_per_second{gpu="0",uuid="GPU-8a2c..."} 1.2288e+06
    medobs_gpu_pcie_receive_bytes_per_second{gpu="0",uuid="GPU-8a2c..."} 3.4816e+07
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType

from prometheus_client.core import Metric

from exporters.gpu import nvml_errors
from exporters.gpu.background import BackgroundHealth, Periodic
from exporters.gpu.fields import KIB
from exporters.gpu.session import Device, Inventory
from medobs.core.catalog import gpu
from medobs.core.runtime import CollectionError, gauge

log = logging.getLogger("medobs.exporter.gpu")

TASK = "pcie"


class PcieSampler:
    """Samples PCIe TX/RX of every GPU while the NVML session is up (a session Listener)."""

    def __init__(self, nvml: ModuleType, interval: float, health: BackgroundHealth):
        self.nvml = nvml
        self._periodic = Periodic(TASK, interval, self._sample, health)
        self._lock = threading.Lock()
        self._devices: tuple[Device, ...] = ()
        self._unsupported: set[str] = set()
        self._values: dict[str, tuple[float, float]] = {}  # uuid -> (tx, rx) bytes per second

    def start(self, inventory: Inventory) -> None:
        self._devices = inventory.devices
        self._unsupported = set()
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
        with self._lock:
            self._values = {}

    def families(self, devices: tuple[Device, ...]) -> list[Metric]:
        transmit, receive = gauge(gpu.PCIE_TX), gauge(gpu.PCIE_RX)
        with self._lock:
            values = dict(self._values)
        for device in devices:
            if device.uuid in values:
                tx, rx = values[device.uuid]
                transmit.add_metric(device.labels, tx)
                receive.add_metric(device.labels, rx)
        return [transmit, receive]

    def _sample(self) -> bool:
        nvml = self.nvml
        values, failure = {}, None
        for device in self._devices:
            if device.uuid in self._unsupported or device.lost_reason is not None:
                continue
            try:
                tx = nvml.nvmlDeviceGetPcieThroughput(device.handle, nvml.NVML_PCIE_UTIL_TX_BYTES)
                rx = nvml.nvmlDeviceGetPcieThroughput(device.handle, nvml.NVML_PCIE_UTIL_RX_BYTES)
            except nvml.NVMLError as error:
                if nvml_errors.code(error) in nvml_errors.UNSUPPORTED:
                    self._unsupported.add(device.uuid)
                    log.info("GPU %d (%s): PCIe throughput skipped (%s)", device.index, device.uuid, nvml_errors.describe(error))
                else:
                    failure = CollectionError(nvml_errors.reason(error), f"GPU {device.index}: {error}")
                continue
            values[device.uuid] = (tx * KIB, rx * KIB)  # NVML reports KB/s
        with self._lock:
            self._values = values
        if failure is not None:
            raise failure
        return True
