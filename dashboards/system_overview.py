"""System Overview: the platform at a glance, as the seed document lays it out.

API performance (request rate, p50 / p95 / p99, 4xx and 5xx error rate) from micrometer on the
gateway; ML performance (inference time, GPU utilisation, batch size, images/s) from the
inference sidecar and the GPU exporter; infrastructure (CPU, memory, network and disk I/O per
pod) from cAdvisor.
"""

from __future__ import annotations

from typing import Any

from dashboards.panels import (
    BYTES,
    BYTES_PER_SECOND,
    COUNT,
    IMAGES_PER_SECOND,
    JOB_INSTANCE,
    NAMESPACE_POD,
    RATIO,
    REQUESTS_PER_SECOND,
    SECONDS,
    Row,
    board,
    jobs_matcher,
    mean,
    quantiles,
    rate,
    share_or_zero,
    stat,
    target,
    timeseries,
)
from medobs.core.catalog import gateway, gpu, inference, kubernetes, platform

JOBS = ("api-gateway", "inference-exporter", "gpu")
REQUESTS = gateway.HTTP_SERVER_REQUESTS
#: Spring's own health and metrics endpoints are not user traffic.
USER_TRAFFIC = 'uri!~"/actuator.*"'
#: cAdvisor also reports each pod's cgroup as a whole with container="": skip it, or it counts twice.
CONTAINERS = 'container!=""'


def _health() -> Row:
    return Row("Health", [
        stat(
            "Scrape targets", "OK when every selected target of the job answered Prometheus's last scrape.",
            COUNT, target(f"min by (job) ({JOB_INSTANCE(platform.UP.name, jobs_matcher(*JOBS))})", "{{job}}"),
            width=12, status=True,
        ),
        stat(
            "Model available", "OK when TF Serving reports at least one version of the model AVAILABLE.",
            COUNT, target(f"min by (model) ({JOB_INSTANCE(inference.MODEL_AVAILABLE.name)})", "{{model}}"),
            width=12, status=True,
        ),
    ])


def _api() -> Row:
    count = JOB_INSTANCE(REQUESTS.count, USER_TRAFFIC)
    error_rates = [
        target(share_or_zero(JOB_INSTANCE(REQUESTS.count, USER_TRAFFIC, f'status=~"{digit}.."'), count), f"{digit}xx")
        for digit in "45"
    ]
    return Row("API performance", [
        timeseries(
            "Request rate", "Requests per second the gateway served, by outcome (SUCCESS, CLIENT_ERROR ...).",
            REQUESTS_PER_SECOND, target(f"sum by (outcome) ({rate(count)})", "{{outcome}}"),
        ),
        timeseries(
            "Response time", "p50 / p95 / p99 of the gateway's request duration (micrometer histogram).",
            SECONDS, *quantiles(JOB_INSTANCE(REQUESTS.bucket, USER_TRAFFIC)),
        ),
        timeseries(
            "Error rate", "Share of requests answered 4xx (the client's fault) and 5xx (ours).",
            RATIO, *error_rates,
        ),
    ])


def _ml() -> Row:
    batch = inference.BATCH_SIZE
    return Row("ML performance", [
        timeseries(
            "Inference time", "p50 / p95 / p99 of predict requests end to end, as the caller saw them.",
            SECONDS, *quantiles(JOB_INSTANCE(inference.REQUEST_DURATION.bucket)), width=6,
        ),
        timeseries(
            "Throughput", "Images (instances) the model returned predictions for, per second.",
            IMAGES_PER_SECOND, target(f"sum by (model) ({rate(JOB_INSTANCE(inference.IMAGES.name))})", "{{model}}"),
            width=6,
        ),
        timeseries(
            "Batch size", "Images per predict request: the mean and the p95.",
            COUNT,
            target(mean(JOB_INSTANCE(batch.sum), JOB_INSTANCE(batch.count)), "mean"),
            quantiles(JOB_INSTANCE(batch.bucket))[1],
            width=6,
        ),
        timeseries(
            "GPU utilisation", "Share of time a kernel ran on each GPU.",
            RATIO, target(JOB_INSTANCE(gpu.UTILIZATION.name), "{{instance}} GPU {{gpu}}"), width=6, maximum=1,
        ),
    ])


def _infrastructure() -> Row:
    def per_pod(series: str, *matchers: str) -> str:
        return f"sum by (pod) ({rate(NAMESPACE_POD(series, *matchers))})"

    return Row("Infrastructure (per pod)", [
        timeseries(
            "CPU", "CPU cores each pod uses.",
            COUNT, target(per_pod(kubernetes.CPU.name, CONTAINERS), "{{pod}}"), width=6,
        ),
        timeseries(
            "Memory", "Working-set memory of each pod (what the OOM killer looks at).",
            BYTES,
            target(f"sum by (pod) ({NAMESPACE_POD(kubernetes.MEMORY_WORKING_SET.name, CONTAINERS)})", "{{pod}}"),
            width=6,
        ),
        timeseries(
            "Network I/O", "Bytes each pod receives and sends per second.",
            BYTES_PER_SECOND,
            target(per_pod(kubernetes.NETWORK_RECEIVE.name), "{{pod}} received"),
            target(per_pod(kubernetes.NETWORK_TRANSMIT.name), "{{pod}} sent"),
            width=6,
        ),
        timeseries(
            "Disk I/O", "Bytes each pod reads from and writes to disk per second.",
            BYTES_PER_SECOND,
            target(per_pod(kubernetes.FS_READS.name, CONTAINERS), "{{pod}} read"),
            target(per_pod(kubernetes.FS_WRITES.name, CONTAINERS), "{{pod}} written"),
            width=6,
        ),
    ])


def dashboard() -> dict[str, Any]:
    return board(
        "system-overview",
        "System Overview",
        "The medical-imaging platform at a glance: API, ML inference and the pods underneath.",
        tags=["overview"],
        variables=[
            *JOB_INSTANCE.variables(platform.UP.name, jobs_matcher(*JOBS)),
            *NAMESPACE_POD.variables(kubernetes.CPU.name, CONTAINERS),
        ],
        rows=[_health(), _api(), _ml(), _infrastructure()],
    )
