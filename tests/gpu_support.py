"""Helpers of the GPU exporter tests: an exporter on the fake NVML, its samples, promtool."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric

from exporters.gpu.collector import GpuExporter, GpuOptions

from .conftest import require_binary
from .fake_pynvml import FakeNVML


def options(tmp_path, **overrides) -> GpuOptions:
    """Test options: short intervals, no kubelet socket unless given."""
    values = dict(
        hostname="gpu-node-1",
        pod_resources_socket=str(tmp_path / "no-kubelet.sock"),
        pod_refresh_interval=0.1,
        pcie_interval=0.1,
        retry_first=0.05,
        retry_max=0.2,
        ceiling=5.0,
    )
    values.update(overrides)
    return GpuOptions(**values)


@contextlib.contextmanager
def running(nvml: FakeNVML, tmp_path, **overrides) -> Iterator[GpuExporter]:
    """A started exporter on ``nvml``, stopped (threads joined, NVML shut down) afterwards."""
    exporter = GpuExporter(nvml, options(tmp_path, **overrides))
    exporter.start()
    try:
        yield exporter
    finally:
        exporter.stop()


def scrape(exporter: GpuExporter) -> list[Metric]:
    """What /metrics serves: the collection (or health alone) plus the status collector."""
    return exporter.scrape() + list(exporter.status.collect())


def samples(families: list[Metric]) -> dict[str, float]:
    """``name{label=value,...}`` (labels in exposition order, empty ones dropped) -> value."""
    out = {}
    for family in families:
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sample.labels.items() if v != "")
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def named(values: dict[str, float], name: str) -> dict[str, float]:
    """The samples of one metric name."""
    return {key: value for key, value in values.items() if key == name or key.startswith(name + "{")}


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> object:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def promtool_check(exposition: str) -> str:
    """What ``promtool check metrics`` prints about ``exposition`` (empty when clean)."""
    result = subprocess.run(
        [require_binary("promtool"), "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    return (result.stdout + result.stderr).strip()
