"""GPU alerts, from the package's NVML exporter: heat, critical XID errors, uncorrectable ECC
errors, hardware or thermal slowdown, a GPU fallen off the bus, a nearly full framebuffer."""

from __future__ import annotations

from alerts.model import Alert, job, matches, percent, promql, sel
from alerts.thresholds import Thresholds
from medobs.core.catalog import gpu
from medobs.core.durations import seconds

SERVICE = "gpu"
JOB = job("gpu")
#: How descriptions name one GPU.
WHICH = "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }}"


def alerts(t: Thresholds) -> list[Alert]:
    g = t.gpu
    xids = "|".join(str(code) for code in g.critical_xids)
    uncorrected = sel(gpu.ECC_ERRORS, job=JOB, error_type="uncorrected", counter="volatile")
    return [
        Alert(
            name="GpuTemperatureHigh",
            expr=f"{sel(gpu.TEMPERATURE, job=JOB)} > {g.temperature_celsius:g}",
            for_=g.temperature_for,
            severity="warning",
            service=SERVICE,
            dashboard="gpu",
            summary="A GPU runs hot.",
            description=(
                "@which has been at {{ $value }} °C (above @threshold °C) for @for: check its "
                "cooling before it throttles or fails."
            ),
            values={"which": WHICH, "threshold": f"{g.temperature_celsius:g}"},
        ),
        Alert(
            name="GpuXidCriticalError",
            expr=f"time() - {sel(gpu.XID_LAST_SEEN, matches('xid', xids), job=JOB)} < {seconds(g.xid_window)}",
            severity="critical",
            service=SERVICE,
            dashboard="gpu",
            summary="A GPU reported a critical XID error.",
            description=(
                "GPU {{ $labels.uuid }} on {{ $labels.instance }} reported XID {{ $labels.xid }} "
                "{{ $value | humanizeDuration }} ago. The critical XIDs (@xids) mean memory "
                "errors, a GPU fallen off the bus or an NVLink failure: the GPU usually needs a "
                "drain and a reset."
            ),
            values={"xids": ", ".join(str(code) for code in g.critical_xids)},
        ),
        Alert(
            name="GpuUncorrectableEccErrors",
            expr=f"increase({uncorrected}[{g.ecc_window}]) > 0",
            severity="critical",
            service=SERVICE,
            dashboard="gpu",
            summary="A GPU reported uncorrectable ECC memory errors.",
            description=(
                "@which counted {{ $value | humanize }} uncorrectable ECC errors in the last "
                "@window: results computed on it may be corrupt; drain it and reset it."
            ),
            values={"which": WHICH, "window": g.ecc_window},
        ),
        Alert(
            name="GpuHardwareSlowdown",
            expr=f"{sel(gpu.CLOCK_EVENT, matches('reason', '|'.join(g.slowdown_reasons)), job=JOB)} == 1",
            for_=g.slowdown_for,
            severity="warning",
            service=SERVICE,
            dashboard="gpu",
            summary="A GPU's clocks are held down by a hardware or thermal slowdown.",
            description=(
                "@which has had its clocks held down by {{ $labels.reason }} for @for: "
                "inference on it runs slower than it should (overheating, power brake or a "
                "failing power supply)."
            ),
            values={"which": WHICH},
        ),
        Alert(
            name="GpuLost",
            expr=f"{sel(gpu.LOST, job=JOB)} == 1",
            severity="critical",
            service=SERVICE,
            dashboard="gpu",
            summary="A GPU has fallen off the bus.",
            description=(
                "NVML reports @which lost: the pods on it fail until the node is drained and the "
                "GPU reset (or the node rebooted)."
            ),
            values={"which": WHICH},
        ),
        Alert(
            name="GpuMemoryNearlyFull",
            expr=promql(f"""
                {sel(gpu.MEMORY_USED, job=JOB)}
                  / {sel(gpu.MEMORY_TOTAL, job=JOB)}
                  > {g.memory_used_ratio}
            """),
            for_=g.memory_for,
            severity="warning",
            service=SERVICE,
            dashboard="gpu",
            summary="A GPU's framebuffer is nearly full.",
            description=(
                "@which has had {{ $value | humanizePercentage }} of its framebuffer in use "
                "(more than @ratio) for @for: loading a new model version or a larger batch "
                "will fail with out-of-memory."
            ),
            values={"which": WHICH, "ratio": percent(g.memory_used_ratio)},
        ),
    ]
