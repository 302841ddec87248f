"""promtool runs every unit test of the committed build once (one process over all the files, not
one per test): each alert domain's tests and each platform SLO's generated tests pass."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from slo import files, spec
from tests.conftest import REPO, require_binary

TESTS = REPO / "build" / "prometheus" / "tests"
PLATFORM = spec.all_slos(files.platform_specs())


@dataclass(frozen=True)
class Verdict:
    """What ``promtool test rules`` said about one file."""

    passed: bool
    output: str


def promtool_test_rules(paths: list[Path]) -> dict[str, Verdict]:
    """``promtool test rules`` on all of ``paths`` in one run: its verdict on each file, by name.

    promtool writes each file's heading to stdout and its failures to stderr, unbuffered; read
    together they come in order, so each file's section holds what was said about it."""
    result = subprocess.run([require_binary("promtool"), "test", "rules", *map(str, paths)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    parts = re.split(r"^Unit Testing: +(.+)\n", result.stdout, flags=re.M)
    assert parts[1::2] == [str(path) for path in paths], result.stdout
    verdicts = {path.name: Verdict("FAILED" not in text and "SUCCESS" in text, text)
                for path, text in zip(paths, parts[2::2], strict=True)}
    assert (result.returncode == 0) == all(v.passed for v in verdicts.values()), result.stdout
    return verdicts


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    return promtool_test_rules(sorted(TESTS.glob("*.yml")))


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(TESTS.glob("alerts-*.test.yml")), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(verdicts, path):
    assert verdicts[path.name].passed, verdicts[path.name].output


@pytest.mark.slow
def test_generated_tests_of_the_platform_pass(verdicts):
    slos = {name: verdict for name, verdict in verdicts.items() if name.startswith("slo-")}
    assert len(slos) == len(PLATFORM)
    assert all(verdict.passed for verdict in slos.values()), "".join(v.output for v in slos.values())
