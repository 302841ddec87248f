"""bench/inference_proxy.py runs in one go with small numbers, and fails when the proxy's own
metrics miss a request. Not a timed test: its latency and throughput figures are only parsed
(the targets are for docs/performance.md's runs, not for a shared test machine)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

from prometheus_client import CollectorRegistry, generate_latest

from exporters.inference.recorder import RequestMetrics
from tests.conftest import REPO

BENCH = REPO / "bench" / "inference_proxy.py"
REQUESTS, ROUNDS, WARM_UP = 300, 3, 200


def load_bench():
    """The benchmark script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("inference_proxy_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()


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


def recorded(ok: int, errors: int = 0, in_flight: int = 0) -> str:
    """What the proxy exposes after ``ok`` one-image answers, ``errors`` 500s and ``in_flight`` unanswered."""
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    for _ in range(ok + errors + in_flight):
        metrics.started(bench.MODEL)
    for _ in range(ok):
        metrics.finished(bench.MODEL, "ok", "200", 0.006, 1)
    for _ in range(errors):
        metrics.finished(bench.MODEL, "http_error", "500", 0.006)
    return generate_latest(registry).decode()


def test_the_count_check_passes_only_when_every_request_sent_was_recorded():
    assert bench.unrecorded(recorded(ok=500), 500) == []
    assert bench.unrecorded(recorded(ok=499), 500) == [
        "requests: the proxy recorded 499, expected 500",
        "requests with outcome ok: the proxy recorded 499, expected 500",
        "latencies observed: the proxy recorded 499, expected 500",
        "images: the proxy recorded 499, expected 500",
    ]
    assert bench.unrecorded(recorded(ok=499, errors=1), 500) == [
        "requests with outcome ok: the proxy recorded 499, expected 500",
        "images: the proxy recorded 499, expected 500",
    ]
    assert "requests in flight: the proxy recorded 1, expected 0" in bench.unrecorded(recorded(ok=499, in_flight=1), 500)
