"""The package's inference sidecar (``medobs exporter inference``) and client helper.

Three views of the same model, under one prefix:
- ``medobs_inference_model_*``: model availability from TF Serving's model status API;
- ``medobs_inference_server_*``: TF Serving's own metrics, converted to seconds;
- ``medobs_inference_request*`` / ``batch_size`` / ``images``: every request as the caller sees
  it (the in-path proxy and the Python client helper record the same names);
- ``medobs_inference_probe_*``: the synthetic golden request.
"""

from medobs.core.catalog import exporter_health, metric

SOURCE = "medobs-inference"

#: Latency bucket bounds (seconds) of the proxy, client helper and probe histograms. The
#: inference latency SLO thresholds (slo/specs/) must be among them.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
#: Bucket bounds of the instances-per-request histogram.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

UP, SCRAPE_DURATION, SCRAPE_ERRORS, LAST_SUCCESS = exporter_health(
    "medobs_inference", SOURCE, "TF Serving"
)

MODEL_VERSION_STATE = metric(
    "medobs_inference_model_version_state", "gauge",
    "1 for each model version's current state (UNKNOWN, START, LOADING, AVAILABLE, UNLOADING, END).",
    source=SOURCE, labels=("model", "version", "state"),
)
MODEL_VERSION_ERROR = metric(
    "medobs_inference_model_version_error", "gauge",
    "1 with the error code TF Serving reports for a model version (OK when healthy).",
    source=SOURCE, labels=("model", "version", "error_code"),
)
MODEL_AVAILABLE = metric(
    "medobs_inference_model_available", "gauge", "1 if at least one version of the model is AVAILABLE.",
    source=SOURCE, labels=("model",),
)
SERVER_REQUESTS = metric(
    "medobs_inference_server_requests_total", "counter",
    "Requests TF Serving counted, by status (bridged from :tensorflow:serving:request_count).",
    source=SOURCE, labels=("model", "status"),
)
SERVER_REQUEST_DURATION = metric(
    "medobs_inference_server_request_duration_seconds", "histogram",
    "TF Serving request latency in seconds (bridged from :tensorflow:serving:request_latency).",
    source=SOURCE, labels=("model", "api", "entrypoint"), unit="seconds",
)
SERVER_RUNTIME_DURATION = metric(
    "medobs_inference_server_runtime_duration_seconds", "histogram",
    "TensorFlow runtime latency in seconds (bridged from :tensorflow:serving:runtime_latency).",
    source=SOURCE, labels=("model", "api", "runtime"), unit="seconds",
)
SERVER_BATCH_QUEUING_DURATION = metric(
    "medobs_inference_server_batch_queuing_duration_seconds", "histogram",
    "Time requests waited in TF Serving's batching queue, in seconds (when batching is on).",
    source=SOURCE, labels=("thread_pool_name",), unit="seconds",
)
SERVER_BATCHED_RUNS = metric(
    "medobs_inference_server_batched_runs_total", "counter",
    "Batched runs TF Serving's batching session made (bridged from "
    ":tensorflow:serving:batching_session:wrapped_run_count; when batching is on).",
    source=SOURCE,
)
REQUESTS = metric(
    "medobs_inference_requests_total", "counter",
    "Predict requests as the caller saw them, by outcome (ok, http_error, timeout, connection_error, "
    "malformed_response, error) and HTTP status code (empty when none came back).",
    source=SOURCE, labels=("model", "outcome", "code"),
)
REQUEST_DURATION = metric(
    "medobs_inference_request_duration_seconds", "histogram",
    "End-to-end predict latency as the caller saw it, errors and timeouts included.",
    source=SOURCE, labels=("model", "outcome"), unit="seconds",
)
BATCH_SIZE = metric(
    "medobs_inference_batch_size", "histogram",
    "Instances (images) per answered predict request (counted from the predictions returned).",
    source=SOURCE, labels=("model",),
)
IMAGES = metric(
    "medobs_inference_images_total", "counter",
    "Images (instances) the model returned predictions for; rate() gives images per second.",
    source=SOURCE, labels=("model",),
)
REQUESTS_IN_FLIGHT = metric(
    "medobs_inference_requests_in_flight", "gauge", "Predict requests sent and not answered yet.",
    source=SOURCE, labels=("model",),
)
PROBE_DURATION = metric(
    "medobs_inference_probe_duration_seconds", "histogram",
    "End-to-end latency of the synthetic golden predict request, by outcome.",
    source=SOURCE, labels=("model", "outcome"), unit="seconds",
)
PROBE_REQUESTS = metric(
    "medobs_inference_probe_requests_total", "counter",
    "Synthetic probe requests by outcome (ok, http_error, timeout, malformed_response, connection_error) "
    "and HTTP status code (empty when none came back).",
    source=SOURCE, labels=("model", "outcome", "code"),
)
