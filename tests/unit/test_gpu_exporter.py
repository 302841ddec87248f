"""The GPU exporter's info metric names the node, collecting eight GPUs is cheap, and a machine
without the NVIDIA driver is healthy only with --allow-no-gpu."""

import socket

import pynvml
import pytest

from exporters.gpu import cli as gpu_cli
from exporters.gpu.collector import GpuExporter
from medobs.cli import parser
from tests.fake_pynvml import FakeGpu, FakeNVML
from tests.gpu_support import named, running, samples, scrape

U0 = "GPU-00000000-5d3c-4c3a-9d0e-000000000000"


@pytest.mark.parametrize("flags,node_name,hostname", [
    ((), "gpu-node-7", "gpu-node-7"),  # the DaemonSet sets NODE_NAME from spec.nodeName
    (("--hostname", "named-by-flag"), "gpu-node-7", "named-by-flag"),
    ((), None, socket.gethostname()),
])
def test_the_info_metric_names_the_node_from_node_name(tmp_path, monkeypatch, flags, node_name, hostname):
    if node_name is None:
        monkeypatch.delenv("NODE_NAME", raising=False)
    else:
        monkeypatch.setenv("NODE_NAME", node_name)
    args = parser().parse_args(
        ["exporter", "gpu", "--pcie-interval", "0", "--pod-resources-socket", str(tmp_path / "absent.sock"), *flags]
    )
    exporter = GpuExporter(FakeNVML(), gpu_cli.options(args))
    exporter.start()
    try:
        info = named(samples(scrape(exporter)), "medobs_gpu_info")
    finally:
        exporter.stop()
    assert info == {
        f"medobs_gpu_info{{gpu=0,uuid={U0},model=Tesla T4,driver_version=535.104.05,cuda_version=12.2,"
        f"pci_bus_id=00000000:3B:00.0,hostname={hostname}}}": 1
    }


def test_the_collection_of_eight_gpus_is_cheap(tmp_path):
    """Not a benchmark (bench/gpu_exporter.py is): a guard against NVML calls in a loop gone wrong."""
    nvml = FakeNVML([FakeGpu(index=i) for i in range(8)])
    with running(nvml, tmp_path, pcie_interval=0) as exporter:
        scrape(exporter)
        calls_before = sum(nvml.calls.values())
        scrape(exporter)
        per_scrape = sum(nvml.calls.values()) - calls_before
    assert per_scrape <= 8 * 25, per_scrape  # about 21 cheap calls a GPU; unsupported fields are not asked


@pytest.mark.parametrize("error,allowed,up,kinds", [
    # a machine without the driver: healthy with no GPUs when allowed (the local stack), failing otherwise
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, True, 1, {}),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, True, 1, {}),
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, False, 0, {"library_not_found"}),
    # a driver that is there but cannot be used is a failure even when a missing one is allowed
    (pynvml.NVML_ERROR_NO_PERMISSION, True, 0, {"no_permission"}),
])
def test_a_machine_without_the_driver_is_healthy_only_when_allowed(tmp_path, error, allowed, up, kinds):
    nvml = FakeNVML()
    nvml.init_error = error
    with running(nvml, tmp_path, allow_no_gpu=allowed) as exporter:
        values = samples(scrape(exporter))
    assert values["medobs_gpu_up"] == up
    assert {key.partition("kind=")[2].rstrip("}") for key in named(values, "medobs_gpu_scrape_errors_total")} == set(kinds)
    assert len(named(values, "medobs_gpu_nvml_unavailable")) == 1  # why there is no GPU is still said
    assert not named(values, "medobs_gpu_info")
