"""The fake NVML is pynvml's API: same signatures, the very same constants, errors and structures."""

import inspect

import pynvml
import pytest

from tests.fake_pynvml import FakeGpu, FakeNVML

IMPLEMENTED = sorted(
    name for name, member in inspect.getmembers(FakeNVML, inspect.isfunction) if name.startswith("nvml")
)


def test_the_fake_implements_a_real_set_of_functions():
    assert len(IMPLEMENTED) > 35
    assert "nvmlEventSetWait" in IMPLEMENTED and "nvmlDeviceGetPcieThroughput" in IMPLEMENTED


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_each_function_has_pynvmls_signature(name):
    real = getattr(pynvml, name)
    fake = getattr(FakeNVML(), name)
    assert inspect.signature(fake) == inspect.signature(real), name


def test_constants_errors_and_structures_are_the_real_modules():
    fake = FakeNVML()
    for name in ("NVML_ERROR_GPU_IS_LOST", "NVMLError", "NVMLError_NotSupported", "NVMLError_Timeout",
                 "NVMLLibraryMismatchError", "nvmlEventTypeXidCriticalError", "nvmlClocksEventReasonSwPowerCap",
                 "c_nvmlMemory_t", "nvmlMemory_v2", "NVML_PSTATE_UNKNOWN"):
        assert getattr(fake, name) is getattr(pynvml, name)


def test_a_function_the_fake_lacks_is_an_attribute_error_not_a_silent_default():
    with pytest.raises(AttributeError, match="does not implement nvmlDeviceGetFanSpeed"):
        FakeNVML().nvmlDeviceGetFanSpeed


def test_a_handle_by_uuid_is_the_handle_by_index():
    fake = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    fake.nvmlInit()
    assert fake.nvmlDeviceGetHandleByUUID(fake.gpus[1].uuid) is fake.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(pynvml.NVMLError_NotFound):
        fake.nvmlDeviceGetHandleByUUID("GPU-not-here")


def test_calls_before_init_raise_uninitialized_like_nvml():
    fake = FakeNVML()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    fake.nvmlInit()
    assert fake.nvmlDeviceGetCount() == 1
    fake.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()


def test_returns_are_pynvmls_own_types():
    fake = FakeNVML([FakeGpu().all_features()])
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(handle, pynvml.c_nvmlDevice_t)
    assert isinstance(fake.nvmlDeviceGetUtilizationRates(handle), pynvml.c_nvmlUtilization_t)
    assert isinstance(fake.nvmlDeviceGetMemoryInfo(handle), pynvml.c_nvmlMemory_t)
    assert isinstance(fake.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2), pynvml.c_nvmlMemory_v2_t)
    assert fake.nvmlDeviceGetPciInfo(handle).busId == "00000000:3B:00.0"
    processes = fake.nvmlDeviceGetGraphicsRunningProcesses(handle)
    assert isinstance(processes[0], pynvml.nvmlFriendlyObject) and processes[0].usedGpuMemory is None


def test_injected_errors_are_pynvmls_subclasses():
    gpu = FakeGpu()
    fake = FakeNVML([gpu])
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetRemappedRows(handle)
    gpu.errors["nvmlDeviceGetComputeRunningProcesses"] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    with pytest.raises(pynvml.NVMLLibraryMismatchError):  # as pynvml's @throwOnVersionMismatch raises
        fake.nvmlDeviceGetComputeRunningProcesses(handle)
    gpu.lost = True
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        fake.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)


def test_event_wait_times_out_with_nvml_timeout_and_delivers_xids():
    fake = FakeNVML()
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    event_set = fake.nvmlEventSetCreate()
    fake.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
    with pytest.raises(pynvml.NVMLError_Timeout):
        fake.nvmlEventSetWait(event_set, 10)
    fake.inject_xid(0, 79)
    event = fake.nvmlEventSetWait(event_set, 1000)
    assert isinstance(event, pynvml.c_nvmlEventData_t)
    assert (event.eventType, event.eventData) == (pynvml.nvmlEventTypeXidCriticalError, 79)
