"""Issue 7's live acceptance: with the local stack and the healthy simulator running, `medobs
dashboards check` reports no empty panel, and on this machine without a GPU reports the GPU
panels as such.

How long it waits, and why: the check asks for data in the last minute with `$__rate_interval`
at four scrape intervals (20 s, as Grafana sets it for a 5 s scrape). `medobs stack up` returns
once Prometheus has scraped every target once; the panels drawn with `rate` / `increase`
(request, publish and consume rates, latency quantiles, images per second, the Redis and cache
hit ratios) need a second sample of each series, so they fill one scrape interval later. The
test reruns the check every scrape interval until it passes, for at most :data:`PATIENCE`
seconds: on this machine every panel had data 5 to 6 s after `up` returned (docs/dashboards.md),
so the margin is for a loaded machine; a panel that stays empty fails the test with the check's
reasons. (Run after other tests on the shared stack, it passes at the first try.)
"""

from __future__ import annotations

import json
import time

from dashboards.model import load
from medobs.core import links
from tests.conftest import BUILT_DASHBOARDS, medobs
from tests.stack_support import SCRAPE_INTERVAL

RANGE = "1m"
RATE_INTERVAL = f"{4 * SCRAPE_INTERVAL}s"
PATIENCE = 90
#: The GPU board's panel of the exporter's own medobs_gpu_up: it has data without a GPU (0).
GPU_EXPORTER_PANEL = "GPU exporter"


def check(stack, output: str) -> tuple[int, str]:
    result = medobs("dashboards", "check", "--prometheus", stack.prometheus, "--range", RANGE,
                    "--rate-interval", RATE_INTERVAL, "--format", output)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.stdout


def test_every_panel_has_data_on_the_healthy_stack_and_gpu_panels_say_there_is_no_gpu(healthy_stack):
    deadline = time.monotonic() + PATIENCE
    while True:
        status, output = check(healthy_stack, "json")
        if status == 0 or time.monotonic() > deadline:
            break
        time.sleep(SCRAPE_INTERVAL)
    report = json.loads(output)
    empty = [f"{p['dashboard']} / {p['panel']}: {p['reasons']}" for p in report["panels"] if p["status"] == "empty"]
    assert status == 0 and not empty, "\n".join(empty)

    gpu_board = next(b for b in load([BUILT_DASHBOARDS]) if b.uid == links.DASHBOARD_UIDS["gpu"])
    gpu_only = {("GPU", p["title"]) for p in gpu_board.panels() if p["title"] != GPU_EXPORTER_PANEL}
    gpu_only.add(("System Overview", "GPU utilisation"))
    no_gpu = {(p["dashboard"], p["panel"]): p["reasons"] for p in report["panels"] if p["status"] == "no-gpu"}
    assert set(no_gpu) == gpu_only
    assert all({reason["kind"] for reason in reasons} == {"no-gpu"} for reasons in no_gpu.values())
    summary = report["summary"]
    assert summary == {"panels": len(report["panels"]), "ok": len(report["panels"]) - len(gpu_only), "empty": 0,
                       "no-gpu": len(gpu_only)}

    _, text = check(healthy_stack, "text")
    assert text.strip().splitlines()[-1] == (
        f"{summary['panels']} panels on {len(load([BUILT_DASHBOARDS]))} dashboards: {summary['ok']} with data, "
        f"0 empty, {len(gpu_only)} GPU panels without a GPU"
    )
