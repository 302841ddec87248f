"""bench/inference_proxy.py runs in one go with small numbers. Not a timed test: its latency and
throughput figures are only parsed (the targets are for docs/performance.md's runs, not for a shared test machine)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

BENCH = REPO / "bench" / "inference_proxy.py"
REQUESTS, ROUNDS, WARM_UP = 300, 3, 200


@pytest.mark.slow
def test_the_benchmark_runs_and_prints_its_figures():
    result = subprocess.run(
        [sys.executable, str(BENCH), "--requests", str(REQUESTS), "--concurrency", "2", "--rounds", str(ROUNDS)],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for mode in ("direct", "proxy"):
        assert re.search(rf"^{mode} +\d+\.\d\d +\d+\.\d\d +\d+$", out, re.M), out
    added = re.search(r"^added latency: p50 ([+-]\d+\.\d\d) ms, p99 ([+-]\d+\.\d\d) ms", out, re.M)
    ratio = re.search(r"^throughput ratio proxy/direct: (\d+\.\d\d)", out, re.M)
    assert added and ratio, out
    assert float(ratio[1]) > 0
    assert f"the proxy recorded exactly the {WARM_UP + REQUESTS} requests sent through it" in out

