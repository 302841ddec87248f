"""bench/inference_proxy.py runs in one go with small numbers. Not a timed test: its latency and
throughput figures are only parsed (the targets are for docs/performance.md's runs, not for a shared test machine)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

BENCH = REPO / "bench" / "inference_proxy.py"


@pytest.mark.slow
def test_the_benchmark_runs_and_prints_its_figures():
    result = subprocess.run(
        [sys.executable, str(BENCH), "--model-ms", "1", "--clients", "2,4", "--seconds", "0.3", "--rounds", "1"],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = re.findall(r"^ +1ms +(\d+) +(\d+) +(\d+) +(\d+\.\d\d) +[\d.]+ms +[\d.]+ms +([+-]\d+\.\d\d)ms .* (\d+) +\d+us$",
                      out, re.M)
    assert [row[0] for row in rows] == ["2", "4"], out
    for _, direct, proxied, ratio, _, errors in rows:
        assert float(ratio) == pytest.approx(int(proxied) / int(direct), abs=0.01)
        assert errors == "0"
    assert re.search(r"^the proxy recorded exactly the \d+ requests sent through it$", out, re.M), out
