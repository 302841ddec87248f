"""The GPU exporter end to end: HTTP, promtool, dcgm-exporter names, the command on this machine."""

import ctypes
import os
import signal
import subprocess
import sys

import pytest
import requests

from medobs.core.catalog import ALL
from medobs.core.runtime import start_server
from tests.conftest import REPO, free_port
from tests.fake_pynvml import FakeGpu, FakeNVML
from tests.gpu_support import named, promtool_check, running, samples, scrape, wait_for
from tests.kubelet_server import kubelet  # noqa: F401 (a fixture)

U0 = "GPU-00000000-5d3c-4c3a-9d0e-000000000000"
# gpu, UUID, device, modelName, Hostname, as the text format orders them.
DCGM_LABELS = f'Hostname="gpu-node-1",UUID="{U0}",device="nvidia0",gpu="0",modelName="Tesla T4"'
OWN = {name for name, entry in ALL.items() if entry.source == "medobs-gpu"}
DCGM = {name for name, entry in ALL.items() if entry.source == "dcgm-exporter"}


def exposition(exporter) -> str:
    """/metrics of ``exporter`` over HTTP, as Prometheus reads it."""
    server = start_server(exporter, ("127.0.0.1", 0), extra=[exporter.status])
    try:
        return requests.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=10).text
    finally:
        server.shutdown()


def family_names(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def every_feature_node() -> FakeNVML:
    """Two GPUs, every feature on: MIG, row remapping, a failing field, processes."""
    nvml = FakeNVML([FakeGpu(index=0).all_features(), FakeGpu(index=1).all_features()])
    nvml.gpus[1].errors["nvmlDeviceGetPcieReplayCounter"] = 999  # NVML_ERROR_UNKNOWN
    return nvml


def test_every_feature_on_is_promtool_clean_and_covers_the_catalog(tmp_path, kubelet):
    nvml = every_feature_node()
    with running(nvml, tmp_path, pod_resources_socket=kubelet.path) as exporter:
        nvml.inject_xid(0, 79)
        wait_for(lambda: {"medobs_gpu_pod_info", "medobs_gpu_xid_errors_total", "medobs_gpu_pcie_transmit_bytes_per_second"}
                 <= family_names(exposition(exporter)))
        text = exposition(exporter)
    assert promtool_check(text) == ""
    exposed = {name.removesuffix("_total") for name in family_names(text)}
    # Only while NVML is down, or a background task fails (both tested elsewhere):
    assert {name.removesuffix("_total") for name in OWN} - exposed == {
        "medobs_gpu_nvml_unavailable", "medobs_gpu_background_errors",
    }
    assert not DCGM & family_names(text)  # dcgm-exporter's names only when asked for


def test_without_nvml_the_exposition_is_promtool_clean(tmp_path):
    nvml = FakeNVML()
    nvml.init_error = 12  # NVML_ERROR_LIBRARY_NOT_FOUND
    with running(nvml, tmp_path) as exporter:
        text = exposition(exporter)
    assert "medobs_gpu_up 0.0" in text
    assert 'medobs_gpu_nvml_unavailable{reason="library_not_found"} 1.0' in text
    assert promtool_check(text) == ""


def test_dcgm_compatible_adds_dcgm_exporters_names_units_and_labels(tmp_path):
    nvml = every_feature_node()
    with running(nvml, tmp_path, dcgm_compatible=True) as exporter:
        nvml.inject_xid(0, 48)
        nvml.inject_xid(0, 79)
        wait_for(lambda: "medobs_gpu_xid_errors_total" in exposition(exporter) and len(
            named(samples(scrape(exporter)), "medobs_gpu_xid_errors_total")) == 2)
        text = exposition(exporter)
    assert DCGM <= family_names(text)
    expected = {
        "DCGM_FI_DEV_GPU_UTIL": "37.0", "DCGM_FI_DEV_MEM_COPY_UTIL": "12.0", "DCGM_FI_DEV_FB_USED": "5120.0",
        "DCGM_FI_DEV_FB_FREE": str(float(15360 - 5120 - 254)), "DCGM_FI_DEV_GPU_TEMP": "54.0",
        "DCGM_FI_DEV_POWER_USAGE": "31.25", "DCGM_FI_DEV_SM_CLOCK": "1590.0", "DCGM_FI_DEV_MEM_CLOCK": "5000.0",
        "DCGM_FI_DEV_ENC_UTIL": "0.0", "DCGM_FI_DEV_DEC_UTIL": "3.0",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "9.87654321e+08", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "0.0",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "2.0", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "1.0",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE": "0.0", "DCGM_FI_DEV_XID_ERRORS": "79.0",  # the last XID, as dcgm-exporter
    }
    for name, value in expected.items():
        assert f"{name}{{{DCGM_LABELS}}} {value}\n" in text, name
    # dcgm-exporter's counters keep their names (no _total): exposed untyped.
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION untyped" in text
    # promtool objects only to NVIDIA's own names (camelCase modelName, "counter" in a name), never to ours.
    complaints = set(promtool_check(text).splitlines())
    assert complaints == {f"{name} label names should be written in 'snake_case' not 'camelCase'" for name in DCGM} | {
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER metric name should not include type 'counter'"
    }


def _nvml_library_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_the_command_on_this_machine_serves_and_stops_cleanly(tmp_path):
    """The real pynvml, as installed: here there is no libnvidia-ml.so.1, so up 0 and one clear line."""
    port = free_port()
    env = {**os.environ, "NODE_NAME": "test-node"}
    process = subprocess.Popen(
        [sys.executable, "-m", "medobs.cli", "exporter", "gpu", "--listen", f"127.0.0.1:{port}",
         "--pod-resources-socket", str(tmp_path / "absent.sock")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        text = wait_for(lambda: _get(f"http://127.0.0.1:{port}/metrics"), timeout=20)
        assert promtool_check(text) == ""
        if _nvml_library_loads():  # a machine with the NVIDIA driver: bench/gpu_smoke.sh is the real check
            assert "medobs_gpu_up " in text
        else:
            assert "medobs_gpu_up 0.0" in text
            assert 'medobs_gpu_nvml_unavailable{reason="library_not_found"} 1.0' in text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in stderr
    if not _nvml_library_loads():
        unavailable = [line for line in stderr.splitlines() if 'logger=medobs.exporter.gpu msg="NVML unavailable' in line]
        assert len(unavailable) == 1  # logfmt, node_exporter's default --log.format
        assert unavailable[0].startswith("ts=") and " level=warn " in unavailable[0]
        assert unavailable[0].endswith(
            'msg="NVML unavailable (library_not_found: NVML Shared Library Not Found; libnvidia-ml.so.1 is not installed '
            'or not on the library path): serving medobs_gpu_up 0, retrying initialisation with backoff (1s doubling to 60s)"'
        )


def _get(url: str) -> str | None:
    try:
        return requests.get(url, timeout=2).text
    except requests.ConnectionError:
        return None


@pytest.mark.parametrize("args,message", [
    (["--pcie-interval", "-1"], "'-1' is not a number of seconds (0 or more)"),
    (["--pod-refresh-interval", "0"], "'0' is not a number of seconds above 0"),
    (["--listen", "9400"], "'9400' is not HOST:PORT"),
])
def test_bad_flags_are_one_line(args, message):
    from tests.conftest import medobs

    result = medobs("exporter", "gpu", *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
