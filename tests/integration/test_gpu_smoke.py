"""bench/gpu_smoke.sh runs in one go: here against the fake NVML and a stand-in nvidia-smi.

On a GPU machine the script talks to the real NVML and nvidia-smi; this only proves that its
own checks (promtool, the comparison with nvidia-smi, the timing) pass and fail when they should.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port, require_binary

U0 = "GPU-00000000-5d3c-4c3a-9d0e-000000000000"
U1 = "GPU-00000001-5d3c-4c3a-9d0e-000000000001"

PYTHON_WITH_FAKE_NVML = f"""#!/bin/bash
# `python -m medobs.cli ...` with the fake NVML in place of pynvml; anything else is plain Python.
if [ "$1" = "-m" ] && [ "$2" = "medobs.cli" ]; then
    shift 2
    exec {sys.executable} -c '
import sys
sys.path.insert(0, "{REPO}")
from tests.fake_pynvml import FakeGpu, FakeNVML
sys.modules["pynvml"] = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
from medobs.cli import main
sys.exit(main(sys.argv[1:]))' "$@"
fi
exec {sys.executable} "$@"
"""


def nvidia_smi(temperature_of_gpu_1: int) -> str:
    return f"""#!/bin/bash
# Answers like nvidia-smi about the fake's two T4s; a query takes 0.3 s, as a real one does.
if [ "$1" = "-L" ]; then echo "GPU 0: Tesla T4 (UUID: {U0})"; exit 0; fi
sleep 0.3
echo "0, {U0}, 37, 5120, 54"
echo "1, {U1}, 40, 5150, {temperature_of_gpu_1}"
"""


def run_smoke(tmp_path, temperature_of_gpu_1: int) -> tuple[subprocess.CompletedProcess, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(nvidia_smi(temperature_of_gpu_1))
    (bin_dir / "python").write_text(PYTHON_WITH_FAKE_NVML)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    out = tmp_path / "out"
    env = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(bin_dir / "python"),
        "PROMTOOL": require_binary("promtool"), "PORT": str(free_port()), "OUT": str(out),
    }
    result = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_smoke.sh")], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    return result, (out / "report.txt").read_text()


@pytest.mark.slow
def test_the_smoke_script_passes_when_nvidia_smi_agrees(tmp_path):
    result, report = run_smoke(tmp_path, temperature_of_gpu_1=55)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS the exporter serves with medobs_gpu_up 1" in report
    assert "PASS promtool check metrics prints nothing about medobs_gpu_*\n" in report
    assert "PASS promtool on the whole exposition: only dcgm-exporter's known complaints\n" in report
    assert "PASS GPU 1 temperature: exporter 54.0, nvidia-smi 55 (|diff| 1.0 <= 2)" in report
    assert "PASS GPU 1 DCGM_FI_DEV_FB_USED: exporter 5120.0, nvidia-smi 5150 (|diff| 30.0 <= 64)" in report
    assert "target <= 0.1" in report and "FAIL" not in report
    assert report.rstrip().endswith("gpu_smoke: every check passed")


@pytest.mark.slow
def test_the_smoke_script_fails_when_a_value_is_off(tmp_path):
    result, report = run_smoke(tmp_path, temperature_of_gpu_1=70)
    assert result.returncode == 1
    assert "FAIL GPU 1 temperature: exporter 54.0, nvidia-smi 70 (|diff| 16.0 <= 2)" in report
    assert "FAIL GPU 1 DCGM_FI_DEV_GPU_TEMP" in report
    assert report.rstrip().endswith("gpu_smoke: 2 check(s) failed")


def test_without_nvidia_smi_the_script_says_what_is_missing(tmp_path):
    env = {**os.environ, "PATH": "/usr/bin:/bin", "OUT": str(tmp_path)}
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_smoke.sh")], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "gpu_smoke: nvidia-smi not found: run this on a machine with an NVIDIA GPU and driver"
    )
