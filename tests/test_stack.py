"""The native stack: starts real Prometheus on loopback, no duplicates, clean stop, clear errors."""

import os
import socket

import psutil
import pytest
import requests

from medobs import scrape, stack

from .conftest import medobs, require_binary

OFFSET = 21000  # keeps the test stack clear of a developer's own stack on the default ports


@pytest.fixture
def stack_args(tmp_path):
    require_binary("prometheus")
    args = ["stack", "--state-dir", str(tmp_path / "state"), "--port-offset", str(OFFSET)]
    yield args
    medobs(*args, "down")


def our_processes(state_dir) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(state_dir) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def test_up_lists_every_job_then_down_leaves_nothing(stack_args, tmp_path):
    up = medobs(*stack_args, "up", check=True)
    assert "prometheus" in up.stdout and "started" in up.stdout
    prometheus = f"http://127.0.0.1:{9090 + OFFSET}"
    targets = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    assert sorted({t["labels"]["job"] for t in targets}) == sorted(scrape.JOB_NAMES)
    gpu = next(t for t in targets if t["labels"]["job"] == "gpu")
    assert gpu["scrapeUrl"] == f"http://127.0.0.1:{9400 + OFFSET}/metrics"
    config = requests.get(f"{prometheus}/api/v1/status/config", timeout=5).json()["data"]["yaml"]
    assert "scrape_interval: 15s" in config

    again = medobs(*stack_args, "up", check=True)
    assert "already running" in again.stdout
    assert len(our_processes(tmp_path / "state")) == len(stack.COMPONENTS)

    status = medobs(*stack_args, "status", check=True)
    assert "running" in status.stdout and "api-gateway" in status.stdout

    medobs(*stack_args, "down", check=True)
    assert our_processes(tmp_path / "state") == []
    assert medobs(*stack_args, "status").returncode == 1


def test_port_in_use_is_one_clear_line(stack_args):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 9090 + OFFSET))
        squatter.listen()
        result = medobs(*stack_args, "up")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"port {9090 + OFFSET} on 127.0.0.1 is in use" in line and "--port-offset" in line


def test_missing_binary_says_what_to_install(stack_args):
    env = {**os.environ, "PATH": os.path.dirname(os.sys.executable)}
    result = medobs(*stack_args, "up", env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "`prometheus` not found: apt install prometheus" in line
    assert "docker compose up" in line


def test_logs_show_the_component_log(stack_args):
    medobs(*stack_args, "up", check=True)
    logs = medobs(*stack_args, "logs", "prometheus", check=True)
    assert "Server is ready to receive web requests" in logs.stdout
