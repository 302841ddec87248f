"""The README's two set-up commands: what `make up` and `make test` run, in which order, and the
system check they start with."""

import os
import re
import subprocess

from tests.conftest import REPO, require_binary

INSTALL_SYSTEM_DEPS = ".ci/install-system-deps"


def readme_setup_commands() -> list[str]:
    """The commands of the README's "Set up" block, without their comments."""
    block = re.search(r"^## Set up\n+```sh\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S)
    assert block, "README.md has no ```sh block under ## Set up"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def dry_run(command: str) -> list[str]:
    """The recipe lines ``command`` (``make TARGET``) runs from a fresh clone: ``make -n -B``,
    every target remade as on a machine without .venv, nothing executed."""
    make, target = command.split()
    # as typed in a shell, not as a sub-make of `make test` (which would add "make[1]: ..." lines)
    fresh = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run([require_binary(make), "-n", "-B", target], cwd=REPO, env=fresh,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in result.stdout.splitlines()]


def step(lines: list[str], prefix: str) -> int:
    """The index of the first line that starts with ``prefix``."""
    found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert found, f"`{prefix}` not run: {lines}"
    return found[0]


def test_the_readme_sets_up_with_make_up_and_make_test():
    assert readme_setup_commands() == ["make up", "make test"]


def test_make_up_installs_then_builds_then_starts_the_stack():
    lines = dry_run("make up")
    order = [
        step(lines, INSTALL_SYSTEM_DEPS),
        step(lines, "python3 -m venv .venv"),
        step(lines, ".venv/bin/python -m pip install --quiet -e '.[all,test]'"),
        step(lines, ".venv/bin/medobs build"),
        step(lines, ".venv/bin/medobs stack"),
    ]
    assert order == sorted(order), lines
    assert lines[order[-1]].split()[-1] == "up" and lines[-1] == lines[order[-1]], "the stack does not start last"


def test_make_test_installs_then_runs_the_whole_suite():
    lines = dry_run("make test")
    order = [
        step(lines, INSTALL_SYSTEM_DEPS),
        step(lines, "python3 -m venv .venv"),
        step(lines, ".venv/bin/python -m pip install --quiet -e '.[all,test]'"),
        step(lines, ".venv/bin/python -m pytest"),
    ]
    assert order == sorted(order), lines
    # the whole suite, on pytest-xdist workers: no -m, -k or path selects tests
    assert re.fullmatch(r"\.venv/bin/python -m pytest -n \d+", lines[-1]), \
        "the test command selects tests or is not the last step"


def test_make_test_fast_leaves_out_only_the_end_to_end_and_slow_tests():
    assert re.fullmatch(r'\.venv/bin/python -m pytest -n \d+ -m "not e2e and not slow"',
                        dry_run("make test-fast")[-1])


def test_ci_installs_the_system_deps_and_runs_the_readmes_test_command():
    commands = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == [INSTALL_SYSTEM_DEPS, readme_setup_commands()[1]]


def test_the_system_check_finds_nothing_missing_on_this_machine():
    """`--check` changes nothing and exits 0 only when every Debian package, RabbitMQ plugin and
    the PostgreSQL replication rule is in place, as they are on this machine."""
    result = subprocess.run([REPO / INSTALL_SYSTEM_DEPS, "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("nothing missing")


def test_the_system_check_refuses_an_unknown_flag():
    result = subprocess.run([REPO / INSTALL_SYSTEM_DEPS, "--chek"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == f"usage: {REPO / INSTALL_SYSTEM_DEPS} [--check]"
