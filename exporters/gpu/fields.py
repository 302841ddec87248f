"""Per-GPU readings at scrape time: each field one or two cheap NVML calls, in base units.

A field the GPU does not support (NOT_SUPPORTED, a function the driver lacks, no permission)
is skipped, logged once, and not asked again until NVML is initialised again; it is never
exported as a sentinel value. A GPU that answers GPU_IS_LOST or RESET_REQUIRED is reported
lost; an NVML that stopped working raises :class:`~nvml_errors.SessionFailed`; any other
failure skips that field for this scrape and counts ``medobs_gpu_field_errors_total``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pynvml

from exporters.gpu import nvml_errors
from exporters.gpu.session import Device, Inventory
from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.catalog import gpu

log = logging.getLogger("medobs.exporter.gpu")

#: One value: its catalog entry, the label values after ``gpu`` and ``uuid``, the value.
Sample = tuple[CatalogMetric, tuple[str, ...], float]
Reader = Callable[[ModuleType, Any], Iterable[Sample]]

MIB = 1024 * 1024
KIB = 1024
_MHZ = 1_000_000

#: Clock event (throttle) reasons by bit; nvmlClocksThrottleReason* has the same bits.
CLOCK_EVENT_REASONS = {
    "gpu_idle": pynvml.nvmlClocksEventReasonGpuIdle,
    "applications_clocks_setting": pynvml.nvmlClocksEventReasonApplicationsClocksSetting,
    "sw_power_cap": pynvml.nvmlClocksEventReasonSwPowerCap,
    "hw_slowdown": pynvml.nvmlClocksEventReasonHwSlowdown,
    "sync_boost": pynvml.nvmlClocksEventReasonSyncBoost,
    "sw_thermal_slowdown": pynvml.nvmlClocksEventReasonSwThermalSlowdown,
    "hw_thermal_slowdown": pynvml.nvmlClocksEventReasonHwThermalSlowdown,
    "hw_power_brake_slowdown": pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
    "display_clock_setting": pynvml.nvmlClocksEventReasonDisplayClockSetting,
}
_ECC = [
    ("corrected", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
    ("uncorrected", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
]
_ECC_COUNTERS = [("volatile", pynvml.NVML_VOLATILE_ECC), ("aggregate", pynvml.NVML_AGGREGATE_ECC)]


def _with_fallback(nvml: ModuleType, first: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
    """``first()``, or ``fallback()`` where the driver predates ``first``'s function or version."""
    try:
        return first()
    except (nvml.NVMLError_FunctionNotFound, nvml.NVMLError_ArgumentVersionMismatch):
        return fallback()


def _utilization(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    yield gpu.UTILIZATION, (), rates.gpu / 100
    yield gpu.MEMORY_UTILIZATION, (), rates.memory / 100


def _memory(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    # Version 2 leaves driver-reserved memory out of "used", as nvidia-smi does.
    memory = _with_fallback(
        nvml,
        lambda: nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2),
        lambda: nvml.nvmlDeviceGetMemoryInfo(handle),
    )
    yield gpu.MEMORY_USED, (), memory.used
    yield gpu.MEMORY_FREE, (), memory.free
    yield gpu.MEMORY_TOTAL, (), memory.total


def _temperature(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.TEMPERATURE, (), nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)


def _power(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.POWER, (), nvml.nvmlDeviceGetPowerUsage(handle) / 1000


def _power_limit(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.POWER_LIMIT, (), nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000


def _energy(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.ENERGY, (), nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000


def _sm_clock(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.SM_CLOCK, (), nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM) * _MHZ


def _memory_clock(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.MEMORY_CLOCK, (), nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM) * _MHZ


def _performance_state(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    state = nvml.nvmlDeviceGetPerformanceState(handle)
    if state != nvml.NVML_PSTATE_UNKNOWN:
        yield gpu.PERFORMANCE_STATE, (), state


def _clock_events(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    active = _with_fallback(
        nvml,
        lambda: nvml.nvmlDeviceGetCurrentClocksEventReasons(handle),
        lambda: nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle),
    )
    for reason, bit in CLOCK_EVENT_REASONS.items():
        yield gpu.CLOCK_EVENT, (reason,), 1 if active & bit else 0


def _ecc_errors(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    if nvml.nvmlDeviceGetEccMode(handle)[0] != nvml.NVML_FEATURE_ENABLED:
        return
    for error_type, error_code in _ECC:
        for counter, counter_code in _ECC_COUNTERS:
            count = nvml.nvmlDeviceGetTotalEccErrors(handle, error_code, counter_code)
            yield gpu.ECC_ERRORS, (error_type, counter), count


def _remapped_rows(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    correctable, uncorrectable, pending, failed = nvml.nvmlDeviceGetRemappedRows(handle)
    yield gpu.REMAPPED_ROWS, ("correctable",), correctable
    yield gpu.REMAPPED_ROWS, ("uncorrectable",), uncorrectable
    yield gpu.REMAPPED_ROWS_PENDING, (), 1 if pending else 0
    yield gpu.REMAPPED_ROWS_FAILED, (), 1 if failed else 0


def _pcie_replays(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.PCIE_REPLAYS, (), nvml.nvmlDeviceGetPcieReplayCounter(handle)


def _encoder(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.ENCODER_UTILIZATION, (), nvml.nvmlDeviceGetEncoderUtilization(handle)[0] / 100


def _decoder(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.DECODER_UTILIZATION, (), nvml.nvmlDeviceGetDecoderUtilization(handle)[0] / 100


def _persistence_mode(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    yield gpu.PERSISTENCE_MODE, (), 1 if nvml.nvmlDeviceGetPersistenceMode(handle) == nvml.NVML_FEATURE_ENABLED else 0


def _mig(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    enabled = nvml.nvmlDeviceGetMigMode(handle)[0] == nvml.NVML_DEVICE_MIG_ENABLE
    yield gpu.MIG_MODE, (), 1 if enabled else 0
    if not enabled:
        return
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            instance = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError_NotFound:  # an empty slot
            continue
        labels = (str(nvml.nvmlDeviceGetGpuInstanceId(instance)), nvml.nvmlDeviceGetUUID(instance))
        memory = nvml.nvmlDeviceGetMemoryInfo(instance)
        yield gpu.MIG_MEMORY_USED, labels, memory.used
        yield gpu.MIG_MEMORY_TOTAL, labels, memory.total


def _processes(nvml: ModuleType, handle: Any) -> Iterable[Sample]:
    used: dict[int, int] = {}
    for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
        if process.usedGpuMemory is not None:
            used[process.pid] = process.usedGpuMemory
    try:
        graphics = nvml.nvmlDeviceGetGraphicsRunningProcesses(handle)
    except (nvml.NVMLError, nvml.NVMLLibraryMismatchError) as error:
        if nvml_errors.code(error) not in nvml_errors.UNSUPPORTED:
            raise
        graphics = []
    for process in graphics:  # a process with both kinds of context is listed twice
        if process.usedGpuMemory is not None:
            used[process.pid] = max(used.get(process.pid, 0), process.usedGpuMemory)
    for pid, memory in sorted(used.items()):
        yield gpu.PROCESS_MEMORY, (str(pid),), memory


#: Field name (the ``field`` label of medobs_gpu_field_errors_total) -> reader.
FIELDS: dict[str, Reader] = {
    "utilization": _utilization,
    "memory": _memory,
    "temperature": _temperature,
    "power": _power,
    "power_limit": _power_limit,
    "energy": _energy,
    "sm_clock": _sm_clock,
    "memory_clock": _memory_clock,
    "performance_state": _performance_state,
    "clock_events": _clock_events,
    "ecc_errors": _ecc_errors,
    "remapped_rows": _remapped_rows,
    "pcie_replays": _pcie_replays,
    "encoder_utilization": _encoder,
    "decoder_utilization": _decoder,
    "persistence_mode": _persistence_mode,
    "mig": _mig,
    "processes": _processes,
}


@dataclass
class Reading:
    """One GPU at one scrape: its samples, or why it is lost."""

    device: Device
    samples: list[Sample] = field(default_factory=list)
    lost_reason: str | None = None


class DeviceReader:
    """Reads :data:`FIELDS` for a GPU, remembering what each GPU does not support."""

    def __init__(self, nvml: ModuleType, fields: dict[str, Reader] = FIELDS):
        self.nvml = nvml
        self.fields = fields
        self._lock = threading.Lock()
        self._unsupported: set[tuple[str, str]] = set()  # (uuid, field)
        self._logged: set[tuple[str, str]] = set()  # (field, reason) said once
        self._errors: dict[tuple[str, str], int] = {}  # (field, reason) -> failed reads

    def start(self, inventory: Inventory) -> None:
        """A new NVML session (perhaps a new driver): ask every field again."""
        with self._lock:
            self._unsupported.clear()

    def stop(self) -> None:
        """Nothing runs in the background here (a :class:`~session.Listener` like the others)."""

    def read(self, device: Device) -> Reading:
        reading = Reading(device)
        if device.lost_reason is not None:
            reading.lost_reason = device.lost_reason
            return reading
        for name, reader in self.fields.items():
            if (device.uuid, name) in self._unsupported:
                continue
            try:
                samples = list(reader(self.nvml, device.handle))  # all of a field or none of it
            except (self.nvml.NVMLError, self.nvml.NVMLLibraryMismatchError) as error:
                if self._failed(device, name, error):
                    reading.samples.clear()
                    reading.lost_reason = nvml_errors.reason(error)
                    return reading
                continue
            reading.samples.extend(samples)
        return reading

    def _failed(self, device: Device, name: str, error: BaseException) -> bool:
        """Sort one failed read; True when the GPU is lost."""
        code = nvml_errors.code(error)
        if code in nvml_errors.SESSION_FATAL:
            raise nvml_errors.SessionFailed(error)
        if code in nvml_errors.DEVICE_LOST:
            return True
        if code in nvml_errors.UNSUPPORTED:
            key = (name, nvml_errors.reason(error))
            with self._lock:
                self._unsupported.add((device.uuid, name))
                first = key not in self._logged
                self._logged.add(key)
            if first:
                log.info(
                    "%s: skipped on every GPU that does not offer it (first: GPU %d %s, %s)",
                    name, device.index, device.uuid, nvml_errors.describe(error),
                )
            return False
        with self._lock:
            key = (name, nvml_errors.reason(error))
            self._errors[key] = self._errors.get(key, 0) + 1
        return False

    def error_counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._errors)
