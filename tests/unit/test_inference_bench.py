"""bench/inference_proxy.py fails when the proxy's own metrics miss a request (it runs in one go:
tests/integration/test_inference_bench.py)."""

from __future__ import annotations

import importlib.util
import sys

from prometheus_client import CollectorRegistry, generate_latest

from exporters.inference.recorder import RequestMetrics
from tests.conftest import REPO

BENCH = REPO / "bench" / "inference_proxy.py"


def load_bench():
    """The benchmark script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("inference_proxy_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()


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
