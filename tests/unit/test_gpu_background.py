"""XID events counted in a thread, PCIe throughput sampled in a thread, both read at scrape time."""

import logging
import time

import pynvml
import pytest

from tests.fake_pynvml import FakeGpu, FakeNVML
from tests.gpu_support import named, running, samples, scrape, wait_for

U0 = "GPU-00000000-5d3c-4c3a-9d0e-000000000000"
U1 = "GPU-00000001-5d3c-4c3a-9d0e-000000000001"


def xids(exporter) -> dict[str, float]:
    return named(samples(scrape(exporter)), "medobs_gpu_xid_errors_total")


def test_every_xid_is_counted_repeats_included(tmp_path):
    nvml = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    with running(nvml, tmp_path) as exporter:
        assert xids(exporter) == {}
        nvml.inject_xid(0, 79)
        nvml.inject_xid(0, 79)  # a repeat that a last-value gauge would hide
        nvml.inject_xid(1, 13)
        wait_for(lambda: len(xids(exporter)) == 2 and sum(xids(exporter).values()) == 3)
        assert xids(exporter) == {
            f"medobs_gpu_xid_errors_total{{uuid={U0},xid=79}}": 2,
            f"medobs_gpu_xid_errors_total{{uuid={U1},xid=13}}": 1,
        }
        nvml.inject_xid(0, 79)
        wait_for(lambda: xids(exporter)[f"medobs_gpu_xid_errors_total{{uuid={U0},xid=79}}"] == 3)
        values = samples(scrape(exporter))
    assert values[f"medobs_gpu_xid_last_seen_timestamp_seconds{{uuid={U0},xid=79}}"] == pytest.approx(time.time(), abs=5)


def test_xid_counts_survive_an_nvml_reinitialisation_and_show_while_nvml_is_down(tmp_path):
    nvml = FakeNVML([FakeGpu()])
    with running(nvml, tmp_path) as exporter:
        nvml.inject_xid(0, 48)
        wait_for(lambda: xids(exporter))
        nvml.driver_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
        wait_for(lambda: samples(scrape(exporter))["medobs_gpu_up"] == 0)
        assert xids(exporter) == {f"medobs_gpu_xid_errors_total{{uuid={U0},xid=48}}": 1}
        nvml.driver_error = None
        wait_for(lambda: samples(scrape(exporter))["medobs_gpu_up"] == 1, timeout=3)
        assert nvml.open_event_sets() == 1  # the old event set was freed, a new one registered
        nvml.inject_xid(0, 48)
        wait_for(lambda: xids(exporter)[f"medobs_gpu_xid_errors_total{{uuid={U0},xid=48}}"] == 2)


def test_xid_79_from_a_gpu_that_fell_off_the_bus_is_still_attributed(tmp_path):
    nvml = FakeNVML([FakeGpu()])
    with running(nvml, tmp_path) as exporter:
        nvml.gpus[0].lost = True  # its UUID can no longer be asked: the handle says which GPU it is
        nvml.inject_xid(0, 79)
        wait_for(lambda: xids(exporter))
        values = samples(scrape(exporter))
    assert values[f"medobs_gpu_xid_errors_total{{uuid={U0},xid=79}}"] == 1
    assert values[f"medobs_gpu_lost{{gpu=0,uuid={U0},reason=gpu_is_lost}}"] == 1


def test_a_gpu_without_xid_events_is_said_once_and_the_others_are_watched(tmp_path, caplog):
    nvml = FakeNVML([FakeGpu(index=0, supported_events=pynvml.nvmlEventTypePState), FakeGpu(index=1)])
    with caplog.at_level(logging.WARNING, logger="medobs.exporter.gpu"), running(nvml, tmp_path) as exporter:
        nvml.inject_xid(1, 31)
        wait_for(lambda: xids(exporter))
    assert f"GPU 0 ({U0}): XID errors will not be counted (XID events not supported)" in caplog.text
    assert caplog.text.count("XID errors will not be counted") == 1


def test_pcie_throughput_is_sampled_in_the_background_not_in_the_scrape(tmp_path):
    gpus = [FakeGpu(index=i, pcie_delay=0.05) for i in range(4)]  # one sampling round: 0.4 s
    with running(FakeNVML(gpus), tmp_path, pcie_interval=0.1) as exporter:
        wait_for(lambda: len(named(samples(scrape(exporter)), "medobs_gpu_pcie_transmit_bytes_per_second")) == 4)
        values = samples(scrape(exporter))
    assert values["medobs_gpu_scrape_duration_seconds"] < 0.1
    assert values[f"medobs_gpu_pcie_transmit_bytes_per_second{{gpu=0,uuid={U0}}}"] == 1200 * 1024
    assert values[f"medobs_gpu_pcie_receive_bytes_per_second{{gpu=0,uuid={U0}}}"] == 34_000 * 1024
    assert 0 <= values["medobs_gpu_background_age_seconds{task=pcie}"] < 1.5


def test_pcie_sampling_off_reads_nothing(tmp_path):
    nvml = FakeNVML([FakeGpu()])
    with running(nvml, tmp_path, pcie_interval=0) as exporter:
        values = samples(scrape(exporter))
    assert not named(values, "medobs_gpu_pcie_transmit_bytes_per_second")
    assert nvml.calls["nvmlDeviceGetPcieThroughput"] == 0


def test_pcie_unsupported_on_one_gpu_and_failing_on_another(tmp_path):
    gpus = [FakeGpu(index=0), FakeGpu(index=1), FakeGpu(index=2)]
    gpus[0].errors["nvmlDeviceGetPcieThroughput"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    gpus[1].errors["nvmlDeviceGetPcieThroughput"] = pynvml.NVML_ERROR_UNKNOWN
    nvml = FakeNVML(gpus)
    with running(nvml, tmp_path, pcie_interval=0.05) as exporter:
        wait_for(lambda: samples(scrape(exporter)).get("medobs_gpu_background_errors_total{task=pcie,kind=unknown}", 0) >= 2)
        values = samples(scrape(exporter))
    transmit = named(values, "medobs_gpu_pcie_transmit_bytes_per_second")
    assert list(transmit) == ["medobs_gpu_pcie_transmit_bytes_per_second{gpu=2,uuid=GPU-00000002-5d3c-4c3a-9d0e-000000000002}"]
    assert nvml.device_calls["nvmlDeviceGetPcieThroughput", 0] == 1  # unsupported: remembered
    assert nvml.device_calls["nvmlDeviceGetPcieThroughput", 1] >= 2  # failing: asked again each round
