"""Shared test helpers: the repository paths, the medobs command, free loopback ports, and the
end-to-end tests' local stack."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dashboards.generate import DASHBOARDS_DIR

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SCHEMAS = DATA / "schemas"
#: The dashboards of the committed build/ (the commands' default renders them afresh instead).
BUILT_DASHBOARDS = REPO / "build" / DASHBOARDS_DIR


#: The folders of the suite and the marker each gives its tests (`-m unit`, `-m "not e2e"`).
KINDS = {
    "unit": "no process or service outside the test's own: pure Python, in-process fakes and servers",
    "integration": "real binaries or services on this machine: promtool, amtool, Prometheus, Alertmanager, "
                   "RabbitMQ, PostgreSQL, Redis, make, the medobs command in a subprocess",
    "e2e": "the whole local stack (one per session, on fixed ports: run them serially)",
}


def pytest_configure(config: pytest.Config) -> None:
    for kind, meaning in KINDS.items():
        config.addinivalue_line("markers", f"{kind}: {meaning}")
    config.addinivalue_line("markers", "slow: takes more than a few seconds; `make test-fast` leaves it out")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the kind of its folder: tests/unit, tests/integration, tests/e2e."""
    for item in items:
        folder = item.path.relative_to(REPO / "tests").parts[0]
        if folder in KINDS:
            item.add_marker(folder)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``-n N`` (`make test`; ``--dist load``, its default, or ``loadfile``): each module on one
    worker, so that its module-scoped fixtures (a real Prometheus, a broker) start once, and all of
    tests/e2e on one worker, one test after another, as they share one stack on fixed ports.
    Modules go out in collection order, so tests/e2e, the longest, starts first."""
    if config.getvalue("dist") not in ("load", "loadfile"):
        return None
    config.option.loadscopereorder = False
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndOneStack(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/e2e" if nodeid.startswith("tests/e2e/") else super()._split_scope(nodeid)

    return ModulesAndOneStack(config, log)


def medobs(*args: str, check: bool = False, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the medobs CLI in a subprocess, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "medobs.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"medobs {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name: str) -> str:
    """The path of a binary the test needs; a missing one is a failed test, not a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run .ci/install-system-deps (as root)")
    return path


def promql_blocks(markdown: str) -> list[str]:
    """The contents of the ```promql blocks of ``markdown``."""
    return re.findall(r"```promql\n(.*?)```", markdown, flags=re.S)


# The whole local stack, shared by the end-to-end tests (tests/stack_support.py); defined once here
# so that every module gets the same session-scoped stack.
from tests.stack_support import StackUnderTest, healthy_stack, running_stack  # noqa: E402, F401
