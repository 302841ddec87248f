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

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SCHEMAS = DATA / "schemas"


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


def readme_section(start: str, end: str) -> str:
    """The README from the heading ``start`` up to the heading ``end``."""
    readme = (REPO / "README.md").read_text()
    return readme[readme.index(start):readme.index(end)]


def promql_blocks(markdown: str) -> list[str]:
    """The contents of the ```promql blocks of ``markdown``."""
    return re.findall(r"```promql\n(.*?)```", markdown, flags=re.S)


# The whole local stack, shared by the end-to-end tests (tests/stack_support.py); defined once here
# so that every module gets the same session-scoped stack.
from tests.stack_support import StackUnderTest, healthy_stack, running_stack  # noqa: E402, F401
