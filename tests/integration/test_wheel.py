"""The package as a platform team gets it: a wheel built from a clean copy of the checkout,
installed into fresh virtual environments (one with the build extra, one with the gpu extra
alone), its commands run from an empty folder outside the checkout."""

from __future__ import annotations

import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from medobs import __version__
from medobs.cli import EXTRA_MODULES
from tests.conftest import REPO, free_port, require_binary

pytestmark = pytest.mark.slow  # a wheel build and two fresh venvs

#: The environment of the installed commands: nothing that could put the checkout on sys.path.
ENV = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}


def run(*argv: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command; a failure shows what it printed."""
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory) -> Path:
    """The working tree (tracked files and the untracked ones git does not ignore) as a fresh
    repository with one commit: a clean clone of the work in progress."""
    copy = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is not part of it
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    run("git", "init", "--quiet", cwd=copy)
    run("git", "add", "--all", cwd=copy)
    run("git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "--quiet", "-m", "copy", cwd=copy)
    return copy


@pytest.fixture(scope="module")
def wheel(clean_copy, tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--quiet", "-w", dist, cwd=clean_copy)
    (built,) = dist.glob("medobs-*.whl")
    return built


def installed(wheel: Path, extra: str, where: Path) -> Path:
    """A fresh virtual environment with the wheel and one extra; returns its bin/ folder."""
    run(sys.executable, "-m", "venv", where, cwd=where.parent)
    run(where / "bin" / "python", "-m", "pip", "install", "--quiet", f"{wheel}[{extra}]", cwd=where.parent)
    return where / "bin"


@pytest.fixture(scope="module")
def build_venv(wheel, tmp_path_factory) -> Path:
    return installed(wheel, "build", tmp_path_factory.mktemp("build-venv") / "venv")


@pytest.fixture(scope="module")
def gpu_venv(wheel, tmp_path_factory) -> Path:
    return installed(wheel, "gpu", tmp_path_factory.mktemp("gpu-venv") / "venv")


def test_building_the_wheel_leaves_the_clone_clean(clean_copy, wheel):
    """Nothing written into the source tree, above all nothing into build/ (our generated output)."""
    status = run("git", "status", "--porcelain", "--ignored", "--untracked-files=all", cwd=clean_copy).stdout
    assert status == ""


def test_the_wheel_holds_the_five_packages_their_data_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    info = f"medobs-{__version__}.dist-info"
    assert {name.split("/")[0] for name in names} == {"medobs", "exporters", "alerts", "dashboards", "slo", info}
    for folder, pattern in (("slo/specs", "*.yaml"), ("alerts/tests", "*.yml"), ("alerts/runbooks", "**/*.md")):
        data = {str(p.relative_to(REPO)) for p in (REPO / folder).glob(pattern)}
        assert data and data <= names, f"{folder} is not all in the wheel: {sorted(data - names)}"
    assert zipfile.ZipFile(wheel).read(f"{info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"\nVersion: {__version__}\n" in metadata and "\nLicense-Expression: Apache-2.0\n" in metadata


def test_every_command_works_installed_from_an_empty_folder(build_venv, tmp_path):
    require_binary("promtool")
    require_binary("amtool")
    where = run(build_venv / "python", "-c", "import medobs, slo; print(medobs.__file__, slo.__file__)", cwd=tmp_path)
    assert all(Path(path).is_relative_to(build_venv.parent) for path in where.stdout.split()), where.stdout
    run(build_venv / "medobs", "build", "--out", "out", cwd=tmp_path)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("prometheus/rules/alerts-*.yml"))
    assert sorted(p.name for p in out.glob("prometheus/rules/slo-*.yml"))
    assert sorted(p.name for p in out.glob("grafana/dashboards/*.json"))
    assert "SUCCESS" in run(build_venv / "medobs", "rules", "check", cwd=tmp_path).stdout
    tested = run(build_venv / "medobs", "rules", "test", cwd=tmp_path).stdout
    assert "SUCCESS" in tested and "Alertmanager routes:" in tested
    assert run(build_venv / "medobs", "dashboards", "lint", cwd=tmp_path).stdout.endswith(" dashboards, 0 violations\n")
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "a command wrote outside --out"


def test_medobs_version_is_the_version_of_the_package(build_venv, tmp_path):
    assert run(build_venv / "medobs", "--version", cwd=tmp_path).stdout == f"medobs {__version__}\n"


def test_the_gpu_extra_alone_runs_the_gpu_exporter_and_nothing_else(gpu_venv, tmp_path):
    others = sorted(EXTRA_MODULES - {"pynvml", "h2", "yaml", "bcrypt"})  # yaml, bcrypt: --web.config.file
    probe = f"import importlib.util as u; print([m for m in {others!r} if u.find_spec(m)])"
    assert run(gpu_venv / "python", "-c", probe, cwd=tmp_path).stdout == "[]\n"
    port = free_port()
    exporter = subprocess.Popen([gpu_venv / "medobs", "exporter", "gpu", "--listen", f"127.0.0.1:{port}"],
                                cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert exporter.poll() is None, exporter.stdout.read()
            try:
                metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the GPU exporter did not serve /metrics within 30s"
                time.sleep(0.2)
    finally:
        exporter.terminate()
        exporter.communicate(timeout=30)
    up = "1.0" if ctypes.util.find_library("nvidia-ml") else "0.0"  # without NVML it serves the reason
    assert re.search(rf"^medobs_gpu_up {up}$", metrics, flags=re.M), metrics


@pytest.mark.parametrize(("argv", "command", "extra"), [
    (["simulate"], "simulate", "stack"),
    (["stack", "up"], "stack", "stack"),
    (["build", "--out", "out"], "build", "build"),
    (["exporter", "queue", "--rabbitmq-url", "http://127.0.0.1:1"], "exporter queue", "queue"),
])
def test_a_command_without_its_extra_says_in_one_line_what_to_install(gpu_venv, tmp_path, argv, command, extra):
    result = subprocess.run([gpu_venv / "medobs", *argv], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"medobs {command}: needs the {extra} extra: pip install 'medobs[{extra}]'\n"
    assert list(tmp_path.iterdir()) == []


def test_the_help_lists_every_command_and_what_the_missing_ones_need(gpu_venv, tmp_path):
    help_text = run(gpu_venv / "medobs", "--help", cwd=tmp_path).stdout
    assert re.search(r"^ +stack +needs the stack extra: pip install 'medobs\[stack\]'$", help_text, flags=re.M)
    assert re.search(r"^ +exporter +run one of the package's Prometheus exporters$", help_text, flags=re.M)


def test_the_wheel_installed_package_keeps_its_layers(build_venv):
    """The layer rules of tests/integration/test_architecture.py, read from the files the wheel
    installed (not from the checkout)."""
    from tests.integration.test_architecture import PARTS, import_graph, part_of, violations

    site = next((build_venv.parent / "lib").glob("python3*/site-packages"))
    edges = import_graph(site)
    assert {part_of(edge.importer) for edge in edges} >= set(PARTS)
    assert (site / "medobs" / "core" / "runtime.py").is_file(), "the wheel installs files, not a link to the checkout"
    assert violations(edges) == []

