"""GPU: each T4 as the medobs NVML exporter sees it, and the pod each GPU is allocated to.

The pod comes from ``medobs_gpu_pod_info`` (the kubelet's pod-resources API), joined on the
GPU's ``uuid``: ``medobs_gpu_pod_info * on (instance, uuid) group_left (gpu) <gpu metric>``.
"""

from __future__ import annotations

from typing import Any

from dashboards.panels import (
    BYTES,
    CELSIUS,
    COUNT,
    JOB_INSTANCE,
    NONE,
    RATIO,
    WATTS,
    YES_NO,
    Row,
    board,
    increase,
    jobs_matcher,
    stat,
    table,
    target,
    timeseries,
)
from medobs.core.catalog import gpu, platform

JOBS = ("gpu",)
PER_GPU = "{{instance}} GPU {{gpu}}"


def _per_gpu(entry: Any, legend: str = PER_GPU) -> Any:
    return target(JOB_INSTANCE(entry.name), legend)


def _by_pod(entry: Any) -> str:
    """``entry`` per GPU, relabelled with the pod the GPU is allocated to (one series per pod)."""
    return (
        f"{JOB_INSTANCE(gpu.POD_INFO.name)} * on (instance, uuid) group_left (gpu) {JOB_INSTANCE(entry.name)}"
    )


def _allocation() -> Row:
    return Row("GPUs and pods", [
        table(
            "Pod using each GPU",
            "Each GPU with the namespace, pod and container the kubelet allocated it to.",
            target(
                f"{JOB_INSTANCE(gpu.POD_INFO.name)} * on (instance, uuid) group_left (gpu, model) "
                f"{JOB_INSTANCE(gpu.INFO.name)}",
                instant=True,
            ),
            width=18,
        ),
        stat(
            "GPU exporter", "OK when the exporter's last NVML collection succeeded on each node.",
            COUNT, target(f"min by (instance) ({JOB_INSTANCE(gpu.UP.name)})", "{{instance}}"),
            width=6, status=True,
        ),
    ])


def _usage() -> Row:
    return Row("Usage", [
        timeseries(
            "GPU utilisation", "Share of time a kernel ran on each GPU.",
            RATIO, _per_gpu(gpu.UTILIZATION), maximum=1,
        ),
        timeseries(
            "GPU utilisation by pod", "Utilisation of each GPU, named by the pod it is allocated to.",
            RATIO, target(_by_pod(gpu.UTILIZATION), "{{namespace}}/{{pod}} (GPU {{gpu}})"), maximum=1,
        ),
        timeseries(
            "GPU memory", "Framebuffer memory used on each GPU, and its total.",
            BYTES, _per_gpu(gpu.MEMORY_USED, f"{PER_GPU} used"), _per_gpu(gpu.MEMORY_TOTAL, f"{PER_GPU} total"),
        ),
    ])


def _health() -> Row:
    xids = increase(JOB_INSTANCE(gpu.XID_ERRORS.name))
    gpus_seen = f"group by (instance) ({JOB_INSTANCE(gpu.INFO.name)})"
    return Row("Health", [
        timeseries("Temperature", "GPU core temperature.", CELSIUS, _per_gpu(gpu.TEMPERATURE), width=6),
        timeseries(
            "Power", "Power draw of each GPU, and the enforced power limit.",
            WATTS, _per_gpu(gpu.POWER, f"{PER_GPU} draw"), _per_gpu(gpu.POWER_LIMIT, f"{PER_GPU} limit"), width=6,
        ),
        timeseries(
            "Throttle reasons", "Clock event reasons holding each GPU's clocks down (thermal, power cap ...).",
            YES_NO,
            target(f"max by (instance, gpu, reason) ({JOB_INSTANCE(gpu.CLOCK_EVENT.name)})", f"{PER_GPU} {{{{reason}}}}"),
            width=6, stepped=True, maximum=1,
        ),
        timeseries(
            "XID errors", "XID errors NVML reported, by GPU and XID code (0 on each node while there are none).",
            NONE,
            target(f"sum by (instance, uuid, xid) ({xids}) or on (instance) (0 * {gpus_seen})",
                   "{{instance}} {{uuid}} XID {{xid}}"),
            width=6,
        ),
    ])


def dashboard() -> dict[str, Any]:
    return board(
        "gpu",
        "GPU",
        "The inference GPUs: utilisation, memory, temperature, power, throttling, XID errors, and the pod "
        "using each GPU.",
        tags=["gpu"],
        variables=JOB_INSTANCE.variables(platform.UP.name, jobs_matcher(*JOBS)),
        rows=[_allocation(), _usage(), _health()],
    )
