"""A fake NVML for machines without a GPU: pynvml's own API, with GPUs simulated in memory.

:class:`FakeNVML` stands in for the ``pynvml`` module (nvidia-ml-py). Its functions have exactly
pynvml's names and signatures (``tests/test_gpu_fake_nvml.py`` compares them with the installed
module), and everything that is not a function (the ``NVML_*`` constants, the ``NVMLError``
subclasses, the ctypes structures, ``nvmlClocksEventReason*``, ``nvmlEventType*``) *is* the
real module's, so errors are raised and caught exactly as with the real library::

    nvml = FakeNVML([FakeGpu(), FakeGpu(index=1)])
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)      # a real c_nvmlDevice_t pointer
    nvml.nvmlDeviceGetUtilizationRates(handle).gpu    # 37, from a real c_nvmlUtilization_t

Behaviour follows the NVML documentation: calls before ``nvmlInit`` raise
``NVMLError_Uninitialized``; a lost GPU raises ``NVMLError_GpuIsLost`` on every call;
``nvmlDeviceGetPcieThroughput`` blocks about 20 ms; ``nvmlEventSetWait`` blocks up to its
timeout and raises ``NVMLError_Timeout``; a process whose memory the driver cannot report has
``usedGpuMemory`` None. Failures are injected per GPU by function name (``errors``), and
``init_error`` / ``driver_error`` make the whole library fail as a missing library, an unloaded
driver or a permission problem would.
"""

from __future__ import annotations

import ctypes
import inspect
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pynvml as real

MiB = 1024 * 1024

#: NVML's marker for "no MIG instance" in process records.
_NO_INSTANCE = 0xFFFFFFFF


@dataclass
class FakeMig:
    """One MIG device (GPU instance) of a GPU with MIG on."""

    gpu_instance_id: int
    uuid: str
    total: int = 4864 * MiB
    used: int = 1024 * MiB


@dataclass
class FakeGpu:
    """One simulated GPU, in NVML's own units (percent, MiB-free bytes, mW, mJ, MHz, KB/s).

    The defaults are a Tesla T4 on a recent driver: no row remapping and no MIG (both raise
    NOT_SUPPORTED, as on the real card).
    """

    index: int = 0
    name: str = "Tesla T4"
    uuid: str = ""
    minor: int | None = None
    pci_bus_id: str = ""
    utilization: int = 37
    memory_utilization: int = 12
    memory_total: int = 15360 * MiB
    memory_used: int = 5120 * MiB
    memory_reserved: int = 254 * MiB
    temperature: int = 54
    power_mw: int = 31_250
    power_limit_mw: int = 70_000
    energy_mj: int = 987_654_321
    sm_clock_mhz: int = 1590
    memory_clock_mhz: int = 5000
    pstate: int = 0
    clock_event_reasons: int = real.nvmlClocksEventReasonSwPowerCap
    ecc_enabled: bool = True
    #: (error type, counter type) -> count; missing keys count 0.
    ecc_errors: dict[tuple[int, int], int] = field(default_factory=dict)
    #: (correctable, uncorrectable, pending, failure) as nvmlDeviceGetRemappedRows returns them.
    remapped_rows: tuple[int, int, int, int] = (0, 0, 0, 0)
    pcie_tx_kbs: int = 1200
    pcie_rx_kbs: int = 34_000
    pcie_delay: float = 0.02
    pcie_replays: int = 0
    encoder: int = 0
    decoder: int = 3
    persistence: int = real.NVML_FEATURE_ENABLED
    mig_mode: tuple[int, int] = (real.NVML_DEVICE_MIG_DISABLE, real.NVML_DEVICE_MIG_DISABLE)
    mig_devices: list[FakeMig] = field(default_factory=list)
    #: (pid, used bytes or None) per process kind.
    compute_processes: list[tuple[int, int | None]] = field(default_factory=lambda: [(4242, 4800 * MiB)])
    graphics_processes: list[tuple[int, int | None]] = field(default_factory=list)
    supported_events: int = real.nvmlEventTypeXidCriticalError | real.nvmlEventTypeSingleBitEccError
    #: pynvml function name -> NVML error code every call to it returns (``nvmlDeviceGetMemoryInfo_v2``
    #: stands for nvmlDeviceGetMemoryInfo called with a version, as NVML's own symbol is named).
    errors: dict[str, int] = field(
        default_factory=lambda: {
            "nvmlDeviceGetRemappedRows": real.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetMigMode": real.NVML_ERROR_NOT_SUPPORTED,
        }
    )
    lost: bool = False
    #: Seconds every call on this GPU takes (a driver in trouble can take seconds).
    call_delay: float = 0.0

    def __post_init__(self) -> None:
        self.uuid = self.uuid or f"GPU-{self.index:08x}-5d3c-4c3a-9d0e-{self.index:012x}"
        self.minor = self.index if self.minor is None else self.minor
        self.pci_bus_id = self.pci_bus_id or f"00000000:{0x3B + self.index:02X}:00.0"

    def all_features(self) -> FakeGpu:
        """Every optional feature on: row remapping and MIG supported, MIG enabled with two instances."""
        self.errors = {}
        self.remapped_rows = (2, 1, 0, 0)
        self.mig_mode = (real.NVML_DEVICE_MIG_ENABLE, real.NVML_DEVICE_MIG_ENABLE)
        self.mig_devices = [
            FakeMig(1, f"MIG-{self.index:08x}-0001-4000-8000-000000000001"),
            FakeMig(2, f"MIG-{self.index:08x}-0002-4000-8000-000000000002", used=2048 * MiB),
        ]
        self.graphics_processes = [(5151, None)]
        return self


class _EventSet:
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[Any, int, int]] = queue.Queue()
        self.registered: dict[int, int] = {}  # address of the device handle -> event types
        self.freed = False


class FakeNVML:
    """Stands in for the ``pynvml`` module: see the module docstring."""

    def __init__(self, gpus: list[FakeGpu] | None = None, driver: str = "535.104.05", cuda: int = 12020):
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.driver = driver
        self.cuda = cuda
        #: An NVML error code nvmlInit raises (LIBRARY_NOT_FOUND, DRIVER_NOT_LOADED, NO_PERMISSION ...).
        self.init_error: int | None = None
        #: An NVML error code every call after init raises (the driver unloaded under us).
        self.driver_error: int | None = None
        self.calls: Counter[str] = Counter()
        #: (function name, GPU index) -> calls on that GPU.
        self.device_calls: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._initialised = 0
        self._handles: dict[int, FakeGpu | tuple[FakeGpu, FakeMig]] = {}
        self._handle_of: dict[int, Any] = {}  # id of a GPU or MIG object -> its handle
        self._event_sets: list[_EventSet] = []

    # -- what is not a function is the real module's ---------------------------------------

    def __getattr__(self, name: str) -> Any:
        value = getattr(real, name)
        if inspect.isfunction(value):
            raise AttributeError(f"the fake NVML does not implement {name}")
        return value

    # -- simulation helpers (not part of pynvml) ---------------------------------------------

    def inject_xid(self, index: int, xid: int) -> None:
        """Report XID ``xid`` on GPU ``index`` to every event set registered for XID events."""
        gpu = self.gpus[index]
        handle = self._handle(gpu)
        for event_set in self._event_sets:
            types = event_set.registered.get(ctypes.addressof(handle.contents), 0)
            if types & real.nvmlEventTypeXidCriticalError and not event_set.freed:
                event_set.events.put((handle, real.nvmlEventTypeXidCriticalError, xid))

    @property
    def initialised(self) -> bool:
        return self._initialised > 0

    def open_event_sets(self) -> int:
        return sum(1 for event_set in self._event_sets if not event_set.freed)

    def _handle(self, obj: FakeGpu | FakeMig, parent: FakeGpu | None = None) -> Any:
        with self._lock:
            handle = self._handle_of.get(id(obj))
            if handle is None:
                handle = ctypes.pointer(real.struct_c_nvmlDevice_t())
                self._handle_of[id(obj)] = handle
                self._handles[ctypes.addressof(handle.contents)] = obj if parent is None else (parent, obj)
        return handle

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
        if not self._initialised:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        if self.driver_error is not None:
            raise real.NVMLError(self.driver_error)

    def _device(self, name: str, handle: Any) -> FakeGpu:
        """The GPU behind ``handle`` for a call to ``name``, raising what NVML would."""
        self._call(name)
        target = self._resolve(handle)
        gpu = target[0] if isinstance(target, tuple) else target
        with self._lock:
            self.device_calls[name, gpu.index] += 1
        if gpu.call_delay:
            time.sleep(gpu.call_delay)
        if gpu.lost:
            raise real.NVMLError(real.NVML_ERROR_GPU_IS_LOST)
        if name in gpu.errors:
            raise real.NVMLError(gpu.errors[name])
        return gpu

    def _resolve(self, handle: Any) -> FakeGpu | tuple[FakeGpu, FakeMig]:
        if not isinstance(handle, real.c_nvmlDevice_t) or not handle:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        target = self._handles.get(ctypes.addressof(handle.contents))
        if target is None:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return target

    def _mig(self, handle: Any) -> FakeMig | None:
        target = self._resolve(handle)
        return target[1] if isinstance(target, tuple) else None

    # -- library ------------------------------------------------------------------------------

    def nvmlInit(self):
        with self._lock:
            self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise real.NVMLError(self.init_error)
        self._initialised += 1
        return None

    def nvmlShutdown(self):
        self._call("nvmlShutdown")
        self._initialised -= 1
        return None

    def nvmlSystemGetDriverVersion(self):
        self._call("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        self._call("nvmlSystemGetCudaDriverVersion")
        return self.cuda

    def nvmlDeviceGetCount(self):
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return self._handle(self.gpus[index])

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._call("nvmlDeviceGetHandleByUUID")
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return self._handle(gpu)
        raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)

    # -- identity -----------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle):
        gpu = self._device("nvmlDeviceGetUUID", handle)
        mig = self._mig(handle)
        return mig.uuid if mig else gpu.uuid

    def nvmlDeviceGetName(self, handle):
        return self._device("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetPciInfo(self, handle):
        gpu = self._device("nvmlDeviceGetPciInfo", handle)
        return real.nvmlPciInfo_t(busId=gpu.pci_bus_id.encode(), busIdLegacy=gpu.pci_bus_id[4:].encode())

    def nvmlDeviceGetMinorNumber(self, handle):
        return self._device("nvmlDeviceGetMinorNumber", handle).minor

    # -- readings -----------------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, handle):
        gpu = self._device("nvmlDeviceGetUtilizationRates", handle)
        return real.c_nvmlUtilization_t(gpu=gpu.utilization, memory=gpu.memory_utilization)

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        gpu = self._device("nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo", handle)
        mig = self._mig(handle)
        total, used, reserved = (mig.total, mig.used, 0) if mig else (gpu.memory_total, gpu.memory_used, gpu.memory_reserved)
        free = total - used - reserved
        if not version:  # the v1 structure counts reserved memory as used
            return real.c_nvmlMemory_t(total=total, free=free, used=used + reserved)
        if version != real.nvmlMemory_v2:
            raise real.NVMLError(real.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        return real.c_nvmlMemory_v2_t(version=version, total=total, reserved=reserved, free=free, used=used)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        gpu = self._device("nvmlDeviceGetTemperature", handle)
        if sensor != real.NVML_TEMPERATURE_GPU:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._device("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return self._device("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self._device("nvmlDeviceGetTotalEnergyConsumption", handle).energy_mj

    def nvmlDeviceGetClockInfo(self, handle, type):
        gpu = self._device("nvmlDeviceGetClockInfo", handle)
        clocks = {real.NVML_CLOCK_SM: gpu.sm_clock_mhz, real.NVML_CLOCK_MEM: gpu.memory_clock_mhz}
        if type not in clocks:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return clocks[type]

    def nvmlDeviceGetPerformanceState(self, handle):
        return self._device("nvmlDeviceGetPerformanceState", handle).pstate

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._device("nvmlDeviceGetCurrentClocksEventReasons", handle).clock_event_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return self._device("nvmlDeviceGetCurrentClocksThrottleReasons", handle).clock_event_reasons

    def nvmlDeviceGetEccMode(self, handle):
        gpu = self._device("nvmlDeviceGetEccMode", handle)
        state = real.NVML_FEATURE_ENABLED if gpu.ecc_enabled else real.NVML_FEATURE_DISABLED
        return [state, state]

    def nvmlDeviceGetTotalEccErrors(self, handle, errorType, counterType):
        gpu = self._device("nvmlDeviceGetTotalEccErrors", handle)
        if errorType not in (0, 1) or counterType not in (real.NVML_VOLATILE_ECC, real.NVML_AGGREGATE_ECC):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        if not gpu.ecc_enabled:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.ecc_errors.get((errorType, counterType), 0)

    def nvmlDeviceGetRemappedRows(self, device):
        return self._device("nvmlDeviceGetRemappedRows", device).remapped_rows

    def nvmlDeviceGetPcieThroughput(self, device, counter):
        gpu = self._device("nvmlDeviceGetPcieThroughput", device)
        time.sleep(gpu.pcie_delay)  # NVML samples the counter for about 20 ms
        values = {real.NVML_PCIE_UTIL_TX_BYTES: gpu.pcie_tx_kbs, real.NVML_PCIE_UTIL_RX_BYTES: gpu.pcie_rx_kbs}
        if counter not in values:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return values[counter]

    def nvmlDeviceGetPcieReplayCounter(self, handle):
        return self._device("nvmlDeviceGetPcieReplayCounter", handle).pcie_replays

    def nvmlDeviceGetEncoderUtilization(self, handle):
        return [self._device("nvmlDeviceGetEncoderUtilization", handle).encoder, 167_000]

    def nvmlDeviceGetDecoderUtilization(self, handle):
        return [self._device("nvmlDeviceGetDecoderUtilization", handle).decoder, 167_000]

    def nvmlDeviceGetPersistenceMode(self, handle):
        return self._device("nvmlDeviceGetPersistenceMode", handle).persistence

    # -- MIG ----------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, device):
        return list(self._device("nvmlDeviceGetMigMode", device).mig_mode)

    def nvmlDeviceGetMaxMigDeviceCount(self, device):
        self._device("nvmlDeviceGetMaxMigDeviceCount", device)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device, index):
        gpu = self._device("nvmlDeviceGetMigDeviceHandleByIndex", device)
        if gpu.mig_mode[0] != real.NVML_DEVICE_MIG_ENABLE:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < 7:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(gpu.mig_devices):
            raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)
        return self._handle(gpu.mig_devices[index], parent=gpu)

    def nvmlDeviceGetGpuInstanceId(self, device):
        self._device("nvmlDeviceGetGpuInstanceId", device)
        mig = self._mig(device)
        if mig is None:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return mig.gpu_instance_id

    # -- processes ----------------------------------------------------------------------------

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return self._processes("nvmlDeviceGetComputeRunningProcesses", handle, "compute_processes")

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses", handle, "graphics_processes")

    def _processes(self, name: str, handle: Any, kind: str) -> list[Any]:
        try:
            gpu = self._device(name, handle)
        except real.NVMLError_FunctionNotFound:  # pynvml's @throwOnVersionMismatch
            raise real.NVMLLibraryMismatchError(f"Unversioned function called ... use {name}_v2") from None
        records = []
        for pid, used in getattr(gpu, kind):
            info = real.c_nvmlProcessInfo_v3_t(
                pid=pid,
                usedGpuMemory=real.NVML_VALUE_NOT_AVAILABLE_ulonglong.value if used is None else used,
                gpuInstanceId=_NO_INSTANCE,
                computeInstanceId=_NO_INSTANCE,
            )
            record = real.nvmlStructToFriendlyObject(info)
            if record.usedGpuMemory == real.NVML_VALUE_NOT_AVAILABLE_ulonglong.value:
                record.usedGpuMemory = None
            records.append(record)
        return records

    # -- events -------------------------------------------------------------------------------

    def nvmlEventSetCreate(self):
        self._call("nvmlEventSetCreate")
        event_set = _EventSet()
        with self._lock:
            self._event_sets.append(event_set)
        return event_set

    def nvmlDeviceGetSupportedEventTypes(self, handle):
        return self._device("nvmlDeviceGetSupportedEventTypes", handle).supported_events

    def nvmlDeviceRegisterEvents(self, handle, eventTypes, eventSet):
        gpu = self._device("nvmlDeviceRegisterEvents", handle)
        if eventTypes & ~gpu.supported_events:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        address = ctypes.addressof(handle.contents)
        eventSet.registered[address] = eventSet.registered.get(address, 0) | eventTypes
        return None

    def nvmlEventSetWait(self, eventSet, timeoutms):
        self._call("nvmlEventSetWait")
        try:
            handle, event_type, data = eventSet.events.get(timeout=timeoutms / 1000)
        except queue.Empty:
            raise real.NVMLError(real.NVML_ERROR_TIMEOUT) from None
        if self.driver_error is not None:
            raise real.NVMLError(self.driver_error)
        return real.c_nvmlEventData_t(
            device=handle, eventType=event_type, eventData=data,
            gpuInstanceId=_NO_INSTANCE, computeInstanceId=_NO_INSTANCE,
        )

    def nvmlEventSetFree(self, eventSet):
        self._call("nvmlEventSetFree")
        eventSet.freed = True
        return None
