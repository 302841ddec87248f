"""Every per-GPU metric, in base units, and what happens when a field or a GPU fails."""

import logging

import pynvml
import pytest

from medobs.core.catalog import gpu
from tests.fake_pynvml import FakeGpu, FakeNVML, MiB
from tests.gpu_support import named, running, samples, scrape

G0 = "gpu=0,uuid=GPU-00000000-5d3c-4c3a-9d0e-000000000000"
G1 = "gpu=1,uuid=GPU-00000001-5d3c-4c3a-9d0e-000000000001"


@pytest.fixture
def two_gpus():
    """GPU 0 with every feature and distinctive values, GPU 1 a stock T4 (no row remapping, no MIG)."""
    first = FakeGpu(index=0).all_features()
    first.ecc_errors = {
        (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC): 3,
        (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_AGGREGATE_ECC): 17,
        (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC): 1,
    }
    first.pcie_replays = 5
    first.encoder = 4
    first.clock_event_reasons = pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonHwThermalSlowdown
    first.pstate = 2
    first.persistence = pynvml.NVML_FEATURE_DISABLED
    return FakeNVML([first, FakeGpu(index=1)])


def test_every_per_gpu_metric_in_base_units(two_gpus, tmp_path):
    with running(two_gpus, tmp_path, pcie_interval=0) as exporter:
        values = samples(scrape(exporter))
    assert values["medobs_gpu_up"] == 1
    assert values[
        f"medobs_gpu_info{{{G0},model=Tesla T4,driver_version=535.104.05,cuda_version=12.2,"
        "pci_bus_id=00000000:3B:00.0,hostname=gpu-node-1}"
    ] == 1
    expected = {
        f"medobs_gpu_lost{{{G0}}}": 0,
        f"medobs_gpu_utilization_ratio{{{G0}}}": 0.37,
        f"medobs_gpu_memory_utilization_ratio{{{G0}}}": 0.12,
        f"medobs_gpu_memory_used_bytes{{{G0}}}": 5120 * MiB,
        f"medobs_gpu_memory_free_bytes{{{G0}}}": (15360 - 5120 - 254) * MiB,
        f"medobs_gpu_memory_total_bytes{{{G0}}}": 15360 * MiB,
        f"medobs_gpu_temperature_celsius{{{G0}}}": 54,
        f"medobs_gpu_power_watts{{{G0}}}": 31.25,
        f"medobs_gpu_power_limit_watts{{{G0}}}": 70,
        f"medobs_gpu_energy_joules_total{{{G0}}}": 987654.321,
        f"medobs_gpu_sm_clock_hertz{{{G0}}}": 1590e6,
        f"medobs_gpu_memory_clock_hertz{{{G0}}}": 5000e6,
        f"medobs_gpu_performance_state{{{G0}}}": 2,
        f"medobs_gpu_ecc_errors_total{{{G0},error_type=corrected,counter=volatile}}": 3,
        f"medobs_gpu_ecc_errors_total{{{G0},error_type=corrected,counter=aggregate}}": 17,
        f"medobs_gpu_ecc_errors_total{{{G0},error_type=uncorrected,counter=volatile}}": 0,
        f"medobs_gpu_ecc_errors_total{{{G0},error_type=uncorrected,counter=aggregate}}": 1,
        f"medobs_gpu_remapped_rows{{{G0},cause=correctable}}": 2,
        f"medobs_gpu_remapped_rows{{{G0},cause=uncorrectable}}": 1,
        f"medobs_gpu_remapped_rows_pending{{{G0}}}": 0,
        f"medobs_gpu_remapped_rows_failed{{{G0}}}": 0,
        f"medobs_gpu_pcie_replays_total{{{G0}}}": 5,
        f"medobs_gpu_encoder_utilization_ratio{{{G0}}}": 0.04,
        f"medobs_gpu_decoder_utilization_ratio{{{G0}}}": 0.03,
        f"medobs_gpu_persistence_mode{{{G0}}}": 0,
        f"medobs_gpu_mig_mode{{{G0}}}": 1,
        f"medobs_gpu_mig_memory_used_bytes{{{G0},gpu_instance=1,mig_uuid=MIG-00000000-0001-4000-8000-000000000001}}": 1024 * MiB,
        f"medobs_gpu_mig_memory_total_bytes{{{G0},gpu_instance=2,mig_uuid=MIG-00000000-0002-4000-8000-000000000002}}": 4864 * MiB,
        f"medobs_gpu_process_memory_used_bytes{{{G0},pid=4242}}": 4800 * MiB,
        f"medobs_gpu_persistence_mode{{{G1}}}": 1,
    }
    assert {key: values.get(key) for key in expected} == expected
    reasons = {key.split("reason=")[1].rstrip("}"): value for key, value in named(values, gpu.CLOCK_EVENT.name).items() if G0 in key}
    assert reasons == {
        "gpu_idle": 0, "applications_clocks_setting": 0, "sw_power_cap": 1, "hw_slowdown": 0, "sync_boost": 0,
        "sw_thermal_slowdown": 0, "hw_thermal_slowdown": 1, "hw_power_brake_slowdown": 0, "display_clock_setting": 0,
    }
    # A graphics process whose memory the driver cannot report is skipped, not exported as a sentinel.
    assert not [key for key in values if "pid=5151" in key]


def test_unsupported_fields_are_skipped_not_sentinels_and_not_asked_again(tmp_path, caplog):
    nvml = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    with caplog.at_level(logging.INFO, logger="medobs.exporter.gpu"), running(nvml, tmp_path, pcie_interval=0) as exporter:
        for _ in range(3):
            values = samples(scrape(exporter))
    assert values["medobs_gpu_up"] == 1
    for missing in (gpu.REMAPPED_ROWS, gpu.REMAPPED_ROWS_PENDING, gpu.MIG_MODE, gpu.MIG_MEMORY_USED):
        assert not named(values, missing.name)
    assert named(values, gpu.TEMPERATURE.name)
    assert nvml.calls["nvmlDeviceGetRemappedRows"] == 2  # once per GPU, then remembered
    skipped = [r.message for r in caplog.records if "skipped" in r.message]
    assert sorted(message.split(":")[0] for message in skipped) == ["mig", "remapped_rows"]  # once per field
    assert "not_supported: Not Supported" in skipped[0]
    assert gpu.FIELD_ERRORS.name not in str(values)


def test_a_failed_read_skips_the_field_for_that_scrape_and_is_counted(tmp_path):
    nvml = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    nvml.gpus[1].errors["nvmlDeviceGetTemperature"] = pynvml.NVML_ERROR_UNKNOWN
    with running(nvml, tmp_path, pcie_interval=0) as exporter:
        for _ in range(2):
            values = samples(scrape(exporter))
        assert values["medobs_gpu_up"] == 1
        assert f"medobs_gpu_temperature_celsius{{{G1}}}" not in values
        assert values[f"medobs_gpu_temperature_celsius{{{G0}}}"] == 54
        assert values[f"medobs_gpu_power_watts{{{G1}}}"] == 31.25
        assert values["medobs_gpu_field_errors_total{field=temperature,reason=unknown}"] == 2
        del nvml.gpus[1].errors["nvmlDeviceGetTemperature"]  # asked again: it was not "unsupported"
        assert samples(scrape(exporter))[f"medobs_gpu_temperature_celsius{{{G1}}}"] == 54


@pytest.mark.parametrize("code,reason", [
    (pynvml.NVML_ERROR_GPU_IS_LOST, "gpu_is_lost"),
    (pynvml.NVML_ERROR_RESET_REQUIRED, "reset_required"),
])
def test_a_lost_gpu_is_reported_lost_with_its_reason_and_the_others_keep_going(tmp_path, code, reason):
    nvml = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    with running(nvml, tmp_path, pcie_interval=0) as exporter:
        assert samples(scrape(exporter))[f"medobs_gpu_lost{{{G1}}}"] == 0
        nvml.gpus[1].errors["nvmlDeviceGetUtilizationRates"] = code
        values = samples(scrape(exporter))
        assert values["medobs_gpu_up"] == 1
        assert values[f"medobs_gpu_lost{{{G1},reason={reason}}}"] == 1
        assert [key for key in values if G1 in key and not key.startswith(("medobs_gpu_info", "medobs_gpu_lost"))] == []
        assert values[f"medobs_gpu_utilization_ratio{{{G0}}}"] == 0.37
        del nvml.gpus[1].errors["nvmlDeviceGetUtilizationRates"]  # back after a reset
        values = samples(scrape(exporter))
        assert values[f"medobs_gpu_lost{{{G1}}}"] == 0 and values[f"medobs_gpu_utilization_ratio{{{G1}}}"] == 0.37


def test_older_drivers_fall_back_to_the_functions_they_have(tmp_path):
    nvml = FakeNVML([FakeGpu()])
    nvml.gpus[0].errors.update({
        "nvmlDeviceGetMemoryInfo_v2": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        "nvmlDeviceGetCurrentClocksEventReasons": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        "nvmlDeviceGetGraphicsRunningProcesses": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
    })
    with running(nvml, tmp_path, pcie_interval=0) as exporter:
        values = samples(scrape(exporter))
    assert values[f"medobs_gpu_memory_used_bytes{{{G0}}}"] == (5120 + 254) * MiB  # v1 counts reserved as used
    assert values[f"medobs_gpu_clock_event_active{{{G0},reason=sw_power_cap}}"] == 1
    assert nvml.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 1
    assert values[f"medobs_gpu_process_memory_used_bytes{{{G0},pid=4242}}"] == 4800 * MiB


def test_unknown_pstate_disabled_ecc_and_no_permission_give_no_series(tmp_path):
    nvml = FakeNVML([FakeGpu(pstate=pynvml.NVML_PSTATE_UNKNOWN, ecc_enabled=False)])
    nvml.gpus[0].errors["nvmlDeviceGetPowerUsage"] = pynvml.NVML_ERROR_NO_PERMISSION
    with running(nvml, tmp_path, pcie_interval=0) as exporter:
        values = samples(scrape(exporter))
    for absent in (gpu.PERFORMANCE_STATE, gpu.ECC_ERRORS, gpu.POWER):
        assert not named(values, absent.name), absent.name
    assert values[f"medobs_gpu_power_limit_watts{{{G0}}}"] == 70
    assert gpu.FIELD_ERRORS.name not in str(values)
