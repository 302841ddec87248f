"""dcgm-exporter's default metric names and labels, from the same readings (``--dcgm-compatible``).

For teams moving from dcgm-exporter: NVIDIA's Grafana dashboard (12239) and alerts written on
``DCGM_FI_DEV_*`` keep working. Units are dcgm-exporter's (percent, MiB, MHz, mJ), labels are
``gpu``, ``UUID``, ``device``, ``modelName`` and ``Hostname``; ``DCGM_FI_DEV_XID_ERRORS`` is the
last XID seen, as dcgm-exporter reports it (``medobs_gpu_xid_errors_total`` counts them all)::

    DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-8a2c...",device="nvidia0",modelName="Tesla T4",Hostname="gpu-node-1"} 37.0
    DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-8a2c...",device="nvidia0",modelName="Tesla T4",Hostname="gpu-node-1"} 5120.0

Not available from NVML, so not exposed: the profiling fields (``DCGM_FI_PROF_*``, such as the
dashboard's tensor-core panel), memory temperature, NVLink bandwidth and vGPU licence status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import Metric

from exporters.gpu.families import Row, families
from exporters.gpu.fields import MIB, Reading
from exporters.gpu.xid import XidCounts
from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.catalog import gpu


def _percent(ratio: float) -> float:
    return round(ratio * 100)


#: (our entry's name, its extra label values) -> (dcgm-exporter's entry, unit conversion).
_DCGM: dict[tuple[str, tuple[str, ...]], tuple[CatalogMetric, Callable[[float], float]]] = {
    (gpu.UTILIZATION.name, ()): (gpu.DCGM_GPU_UTIL, _percent),
    (gpu.MEMORY_UTILIZATION.name, ()): (gpu.DCGM_MEM_COPY_UTIL, _percent),
    (gpu.ENCODER_UTILIZATION.name, ()): (gpu.DCGM_ENC_UTIL, _percent),
    (gpu.DECODER_UTILIZATION.name, ()): (gpu.DCGM_DEC_UTIL, _percent),
    (gpu.MEMORY_USED.name, ()): (gpu.DCGM_FB_USED, lambda used: used // MIB),
    (gpu.MEMORY_FREE.name, ()): (gpu.DCGM_FB_FREE, lambda free: free // MIB),
    (gpu.TEMPERATURE.name, ()): (gpu.DCGM_GPU_TEMP, lambda celsius: celsius),
    (gpu.POWER.name, ()): (gpu.DCGM_POWER_USAGE, lambda watts: watts),
    (gpu.SM_CLOCK.name, ()): (gpu.DCGM_SM_CLOCK, lambda hertz: round(hertz / 1e6)),
    (gpu.MEMORY_CLOCK.name, ()): (gpu.DCGM_MEM_CLOCK, lambda hertz: round(hertz / 1e6)),
    (gpu.ENERGY.name, ()): (gpu.DCGM_TOTAL_ENERGY, lambda joules: round(joules * 1000)),
    (gpu.PCIE_REPLAYS.name, ()): (gpu.DCGM_PCIE_REPLAY, lambda count: count),
    (gpu.REMAPPED_ROWS.name, ("correctable",)): (gpu.DCGM_CORRECTABLE_REMAPPED_ROWS, lambda rows: rows),
    (gpu.REMAPPED_ROWS.name, ("uncorrectable",)): (gpu.DCGM_UNCORRECTABLE_REMAPPED_ROWS, lambda rows: rows),
    (gpu.REMAPPED_ROWS_FAILED.name, ()): (gpu.DCGM_ROW_REMAP_FAILURE, lambda failed: failed),
}


def dcgm_families(readings: Iterable[Reading], hostname: str, xids: XidCounts) -> list[Metric]:
    rows: list[Row] = []
    for reading in readings:
        if reading.lost_reason is not None:
            continue
        device = reading.device
        labels = [str(device.index), device.uuid, device.device_name, device.model, hostname]
        for entry, extra, value in reading.samples:
            target = _DCGM.get((entry.name, extra))
            if target is not None:
                dcgm_entry, convert = target
                rows.append((dcgm_entry, labels, convert(value)))
        rows.append((gpu.DCGM_XID_ERRORS, labels, xids.last_xid(device.uuid)))
    return families(rows)
