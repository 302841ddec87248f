"""The GPU exporter: NVML readings at scrape time, background results, health.

:class:`GpuExporter` is the collector (fresh families each scrape, one collection shared by
concurrent scrapes, bounded by the scrape timeout: :class:`~medobs.core.runtime.Exporter`);
:attr:`GpuExporter.status` is served beside it and answers even while NVML is down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporters.gpu import pods
from exporters.gpu.background import BackgroundHealth
from exporters.gpu.dcgm import dcgm_families
from exporters.gpu.families import Row, families
from exporters.gpu.fields import DeviceReader, Reading
from exporters.gpu.nvml_errors import SessionFailed
from exporters.gpu.pcie import PcieSampler
from exporters.gpu.podresources import DEFAULT_SOCKET
from exporters.gpu.session import Inventory, Listener, Session
from exporters.gpu.xid import XidCounts, XidWatcher
from medobs.core.catalog import gpu
from medobs.core.runtime import CollectionError, Deadline, Exporter, LinesFamily, gauge


@dataclass(frozen=True)
class GpuOptions:
    hostname: str
    dcgm_compatible: bool = False
    pod_resources_socket: str = DEFAULT_SOCKET
    pod_refresh_interval: float = 10.0
    #: Seconds between PCIe throughput samples; 0 turns sampling off.
    pcie_interval: float = 10.0
    retry_first: float = 1.0
    retry_max: float = 60.0
    ceiling: float = 10.0
    #: A machine without the NVIDIA driver is a node with no GPUs, not a failing collection.
    allow_no_gpu: bool = False


#: What NVML says on a machine without the NVIDIA driver (rather than one whose driver is broken).
NO_DRIVER = ("library_not_found", "driver_not_loaded")


class GpuExporter(Exporter):
    """NVIDIA GPUs through NVML, attributed to pods. A scrape of one T4 looks like::

        medobs_gpu_info{gpu="0",uuid="GPU-8a2c...",model="Tesla T4",driver_version="535.104.05",cuda_version="12.2",pci_bus_id="00000000:3B:00.0",hostname="gpu-node-1"} 1.0
        medobs_gpu_lost{gpu="0",uuid="GPU-8a2c...",reason=""} 0.0
        medobs_gpu_utilization_ratio{gpu="0",uuid="GPU-8a2c..."} 0.37
        medobs_gpu_memory_used_bytes{gpu="0",uuid="GPU-8a2c..."} 5.36870912e+09
        medobs_gpu_temperature_celsius{gpu="0",uuid="GPU-8a2c..."} 54.0
        medobs_gpu_power_watts{gpu="0",uuid="GPU-8a2c..."} 31.25
        medobs_gpu_energy_joules_total{gpu="0",uuid="GPU-8a2c..."} 987654.321
        medobs_gpu_clock_event_active{gpu="0",uuid="GPU-8a2c...",reason="sw_power_cap"} 1.0
        medobs_gpu_ecc_errors_total{gpu="0",uuid="GPU-8a2c...",error_type="corrected",counter="volatile"} 0.0
        medobs_gpu_process_memory_used_bytes{gpu="0",uuid="GPU-8a2c...",pid="4242"} 5.0331648e+09
        medobs_gpu_pcie_receive_bytes_per_second{gpu="0",uuid="GPU-8a2c..."} 3.4816e+07
        medobs_gpu_pod_info{uuid="GPU-8a2c...",namespace="medical-platform",pod="ml-inference-7d9f",container="tf-serving"} 1.0
        medobs_gpu_xid_errors_total{uuid="GPU-8a2c...",xid="79"} 2.0
        medobs_gpu_up 1.0

    and with NVML missing::

        medobs_gpu_up 0.0
        medobs_gpu_nvml_unavailable{reason="library_not_found"} 1.0
        medobs_gpu_scrape_errors_total{kind="library_not_found"} 3.0

    (with ``allow_no_gpu``, a missing library or driver gives ``medobs_gpu_up 1`` and no GPU series).
    """

    def __init__(self, nvml: ModuleType, options: GpuOptions):
        super().__init__((gpu.UP, gpu.SCRAPE_DURATION, gpu.SCRAPE_ERRORS, gpu.LAST_SUCCESS), ceiling=options.ceiling)
        self.options = options
        self.health = BackgroundHealth()
        self.xids = XidCounts()
        self.reader = DeviceReader(nvml)
        self.pcie = PcieSampler(nvml, options.pcie_interval, self.health) if options.pcie_interval > 0 else None
        listeners: list[Listener] = [self.reader, XidWatcher(nvml, self.xids, self.health)]
        if self.pcie is not None:
            listeners.append(self.pcie)
        self.session = Session(nvml, listeners, options.retry_first, options.retry_max)
        self.pods = pods.PodAttribution(options.pod_resources_socket, options.pod_refresh_interval, self.health)
        self.status = _Status(self)

    def start(self) -> None:
        """Initialise NVML (or start retrying) and start the background tasks."""
        self.session.start()
        self.pods.start()

    def stop(self) -> None:
        """Stop every background thread and shut NVML down."""
        self.pods.stop()
        self.session.stop()

    def describe_backend(self) -> str:
        return "NVML"

    def collect_families(self, deadline: Deadline) -> Iterable[Metric]:
        down = self.session.unavailable
        if self.options.allow_no_gpu and down is not None and down[0] in NO_DRIVER:
            return []  # no GPU to read, nothing failing: up 1 (medobs_gpu_nvml_unavailable says why)
        with self.session.reading() as inventory:
            try:
                readings = [self.reader.read(device) for device in inventory.devices]
            except SessionFailed as failure:
                self.session.fail(failure.error)
                raise CollectionError(failure.reason, f"NVML failed: {failure}") from None
        result = families(self._rows(inventory, readings))
        if self.pcie is not None:
            result += self.pcie.families(inventory.devices)
        mig_parents = {
            extra[1]: reading.device.uuid
            for reading in readings for entry, extra, _ in reading.samples if entry is gpu.MIG_MEMORY_TOTAL
        }
        result += pods.families(pods.attribute(self.pods.allocations(), inventory.devices, mig_parents))
        if self.options.dcgm_compatible:
            result += dcgm_families(readings, self.options.hostname, self.xids)
        return [family for family in result if isinstance(family, LinesFamily) or family.samples]  # those have rows

    def _rows(self, inventory: Inventory, readings: list[Reading]) -> list[Row]:
        rows: list[Row] = []
        for reading in readings:
            device = reading.device
            info = [device.model, inventory.driver, inventory.cuda, device.pci_bus_id, self.options.hostname]
            rows.append((gpu.INFO, device.labels + info, 1))
            rows.append((gpu.LOST, device.labels + [reading.lost_reason or ""], 1 if reading.lost_reason else 0))
        for reading in readings:
            rows.extend((entry, reading.device.labels + list(extra), value) for entry, extra, value in reading.samples)
        return rows


class _Status(Collector):
    """What is known whether or not NVML is up: why it is down, XID counts, errors, background health."""

    def __init__(self, exporter: GpuExporter):
        self.exporter = exporter

    def collect(self) -> Iterable[Metric]:
        exporter = self.exporter
        unavailable = gauge(gpu.NVML_UNAVAILABLE)
        if (down := exporter.session.unavailable) is not None:
            unavailable.add_metric([down[0]], 1)
        field_errors = families(
            (gpu.FIELD_ERRORS, list(key), count) for key, count in sorted(exporter.reader.error_counts().items())
        )
        result = [unavailable, *exporter.xids.families(), *field_errors, *exporter.health.families()]
        return [family for family in result if family.samples]
