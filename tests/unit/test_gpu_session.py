"""NVML missing, unloaded, forbidden or failing: the exporter serves up 0 with the reason and recovers."""

import logging
import threading
import time

import pynvml
import pytest

from exporters.gpu.session import Backoff
from tests.fake_pynvml import FakeGpu, FakeNVML
from tests.gpu_support import running, samples, scrape, wait_for


@pytest.mark.parametrize("code,reason,hint", [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "library_not_found", "libnvidia-ml.so.1 is not installed"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver_not_loaded", "kernel driver is not loaded"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no_permission", "cannot open /dev/nvidia*"),
    (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "lib_rm_version_mismatch", "different versions"),
    (pynvml.NVML_ERROR_UNKNOWN, "unknown", "Unknown Error"),
])
def test_nvml_that_cannot_start_gives_up_zero_with_the_reason_and_one_log_line(tmp_path, caplog, code, reason, hint):
    nvml = FakeNVML([FakeGpu()])
    nvml.init_error = code
    with caplog.at_level(logging.INFO, logger="medobs.exporter.gpu"), running(nvml, tmp_path) as exporter:
        time.sleep(0.5)  # several retries
        for _ in range(3):
            values = samples(scrape(exporter))
        assert nvml.calls["nvmlInit"] >= 3
    assert values["medobs_gpu_up"] == 0
    assert values[f"medobs_gpu_nvml_unavailable{{reason={reason}}}"] == 1
    assert values[f"medobs_gpu_scrape_errors_total{{kind={reason}}}"] == 3
    assert not [key for key in values if key.startswith("medobs_gpu_info")]
    # One line from the session however many retries; the scrape machinery adds its own per error kind.
    lines = [r.getMessage() for r in caplog.records if r.name == "medobs.exporter.gpu" and "NVML" in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"NVML unavailable ({reason}: ") and hint in lines[0]
    assert "serving medobs_gpu_up 0, retrying initialisation with backoff" in lines[0]


def test_initialisation_is_retried_with_backoff_until_nvml_comes(tmp_path, caplog):
    nvml = FakeNVML([FakeGpu()])
    nvml.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    with caplog.at_level(logging.INFO, logger="medobs.exporter.gpu"), running(nvml, tmp_path) as exporter:
        time.sleep(1.0)
        attempts = nvml.calls["nvmlInit"]
        # 0.05, 0.1, 0.2, 0.2 ... seconds apart: a handful in a second, not a busy loop.
        assert 4 <= attempts <= 9, attempts
        nvml.init_error = None
        wait_for(lambda: samples(scrape(exporter))["medobs_gpu_up"] == 1, timeout=2)
        values = samples(scrape(exporter))
    assert "medobs_gpu_nvml_unavailable" not in str(values)
    assert "NVML ready: 1 GPU(s), driver 535.104.05, CUDA 12.2" in caplog.text


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(1, 60)
    assert [backoff.next() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.next() == 1


def test_nvml_failing_while_running_is_shut_down_and_initialised_again(tmp_path, caplog):
    nvml = FakeNVML([FakeGpu()])
    with caplog.at_level(logging.INFO, logger="medobs.exporter.gpu"), running(nvml, tmp_path) as exporter:
        assert samples(scrape(exporter))["medobs_gpu_up"] == 1
        nvml.driver_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED  # the driver unloaded under us
        values = samples(scrape(exporter))
        assert values["medobs_gpu_up"] == 0
        assert values["medobs_gpu_scrape_errors_total{kind=driver_not_loaded}"] == 1
        wait_for(lambda: "medobs_gpu_nvml_unavailable{reason=driver_not_loaded}" in samples(scrape(exporter)))
        assert nvml.calls["nvmlShutdown"] == 1  # the old session was closed before a new one
        nvml.driver_error = None
        wait_for(lambda: samples(scrape(exporter))["medobs_gpu_up"] == 1, timeout=2)
    assert "NVML failed while running (driver_not_loaded" in caplog.text


def test_zero_gpus_is_up_with_no_gpu_series(tmp_path):
    with running(FakeNVML([]), tmp_path) as exporter:
        values = samples(scrape(exporter))
    assert values["medobs_gpu_up"] == 1
    assert not [key for key in values if key.startswith(("medobs_gpu_info", "medobs_gpu_lost"))]


def test_a_gpu_lost_before_start_up_is_listed_lost(tmp_path):
    nvml = FakeNVML([FakeGpu(index=0, lost=True), FakeGpu(index=1)])
    with running(nvml, tmp_path) as exporter:
        values = samples(scrape(exporter))
    assert values["medobs_gpu_up"] == 1
    assert values["medobs_gpu_lost{gpu=0,reason=gpu_is_lost}"] == 1
    assert values["medobs_gpu_lost{gpu=1,uuid=GPU-00000001-5d3c-4c3a-9d0e-000000000001}"] == 0


def test_device_handles_are_fetched_once_and_kept_across_scrapes(tmp_path):
    nvml = FakeNVML([FakeGpu(index=i) for i in range(3)])
    with running(nvml, tmp_path) as exporter:
        for _ in range(5):
            assert samples(scrape(exporter))["medobs_gpu_up"] == 1
            time.sleep(0.1)  # the PCIe sampler's interval: it reads in between, as does the XID watcher
        assert all(nvml.device_calls["nvmlDeviceGetPcieThroughput", i] >= 4 for i in range(3))  # 2 a round
    assert all(nvml.device_calls["nvmlDeviceGetUtilizationRates", i] == 5 for i in range(3))
    # one lookup per GPU at initialisation; every later read uses the kept handles
    assert nvml.calls["nvmlDeviceGetHandleByIndex"] == 3 and nvml.calls["nvmlDeviceGetHandleByUUID"] == 0


def test_concurrent_scrapes_share_one_nvml_collection(tmp_path):
    nvml = FakeNVML([FakeGpu(call_delay=0.01)])
    with running(nvml, tmp_path, pcie_interval=0) as exporter:
        before = nvml.calls["nvmlDeviceGetUtilizationRates"]
        results = []
        threads = [threading.Thread(target=lambda: results.append(samples(scrape(exporter)))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert nvml.calls["nvmlDeviceGetUtilizationRates"] - before == 1
    assert all(result["medobs_gpu_up"] == 1 for result in results)


def test_a_hanging_driver_times_the_scrape_out_instead_of_hanging_it(tmp_path):
    nvml = FakeNVML([FakeGpu()])
    with running(nvml, tmp_path, pcie_interval=0, ceiling=0.3) as exporter:
        nvml.gpus[0].call_delay = 0.2  # 18 fields: 3.6 s for one collection
        started = time.monotonic()
        values = samples(scrape(exporter))
        assert time.monotonic() - started < 1.0
        assert values["medobs_gpu_up"] == 0 and values["medobs_gpu_scrape_errors_total{kind=timeout}"] == 1
        nvml.gpus[0].call_delay = 0
        wait_for(lambda: samples(scrape(exporter))["medobs_gpu_up"] == 1, timeout=6)


def test_stop_joins_every_thread_and_shuts_nvml_down(tmp_path):
    nvml = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    with running(nvml, tmp_path) as exporter:
        wait_for(lambda: "medobs_gpu_pcie_receive_bytes_per_second" in str(samples(scrape(exporter))))
        assert nvml.open_event_sets() == 1
    assert not nvml.initialised
    assert nvml.open_event_sets() == 0
    assert [t.name for t in threading.enumerate() if t.name.startswith("gpu-")] == []
