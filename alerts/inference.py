"""Inference alerts: the model not AVAILABLE, TF Serving down, the golden probe failing, requests
queueing in TF Serving's batcher.

Inference latency and error-ratio paging is the SLO engine's (``slo:*`` burn-rate alerts).
"""

from __future__ import annotations

from alerts.model import Alert, differs, job, percent, promql, sel, service_down
from alerts.thresholds import Thresholds
from medobs.core.catalog import inference

SERVICE = "ml-inference"
TF_SERVING_JOB = job("ml-inference")
SIDECAR_JOB = job("inference-exporter")


def alerts(t: Thresholds) -> list[Alert]:
    i = t.inference
    probes = f"rate({sel(inference.PROBE_REQUESTS, job=SIDECAR_JOB)}[{i.probe_window}])"
    failed = sel(inference.PROBE_REQUESTS, differs("outcome", "ok"), job=SIDECAR_JOB)
    failed_probes = f"rate({failed}[{i.probe_window}])"
    queueing = f"rate({sel(inference.SERVER_BATCH_QUEUING_DURATION.bucket, job=SIDECAR_JOB)}[{i.queueing_window}])"
    return [
        Alert(
            name="ModelNotAvailable",
            expr=f"max by (model) ({sel(inference.MODEL_AVAILABLE, job=SIDECAR_JOB)}) == 0",
            for_=i.model_unavailable_for,
            severity="critical",
            service=SERVICE,
            dashboard="system-overview",
            summary="The model has no AVAILABLE version on any TF Serving replica: predictions fail.",
            description=(
                "Model {{ $labels.model }} has had no version in state AVAILABLE on any "
                "TF Serving replica for @for: every predict request for it fails."
            ),
        ),
        service_down(
            "TFServingDown", TF_SERVING_JOB, SERVICE, i.down_for,
            summary="No TF Serving replica answers.",
            consequence="every TF Serving pod is down or unreachable, so no image is being classified.",
        ),
        Alert(
            name="InferenceProbeFailing",
            expr=promql(f"""
                sum by (model) ({failed_probes})
                  / sum by (model) ({probes})
                  > {i.probe_failure_ratio}
            """),
            for_=i.probe_for,
            severity="critical",
            service=SERVICE,
            dashboard="system-overview",
            summary="The synthetic golden predict request keeps failing.",
            description=(
                "{{ $value | humanizePercentage }} of the golden probe requests to model "
                "{{ $labels.model }} failed over the last @window (more than @ratio) for @for: "
                "TF Serving answers with errors, times out or returns a malformed prediction."
            ),
            values={"window": i.probe_window, "ratio": percent(i.probe_failure_ratio)},
        ),
        Alert(
            name="InferenceQueueingLatencyHigh",
            expr=promql(f"""
                histogram_quantile(0.95, sum by (job, instance, le) ({queueing}))
                  > {i.queueing_p95_seconds}
            """),
            for_=i.queueing_for,
            severity="warning",
            service=SERVICE,
            dashboard="system-overview",
            summary="Predict requests wait long in TF Serving's batching queue.",
            description=(
                "The 95th percentile of the time requests waited in the batching queue of "
                "{{ $labels.instance }} has been {{ $value | humanizeDuration }} (more than "
                "@threshold s) for @for: the GPU cannot keep up with the request rate."
            ),
            values={"threshold": i.queueing_p95_seconds},
        ),
    ]
