"""TensorFlow Serving 2.10's own metrics on /monitoring/prometheus/metrics.

TF Serving reports latency in microseconds with exponential buckets (10us x 1.8^n, 33 buckets),
counts only requests that reached the model, and writes no HELP lines.
"""

from medobs.core.catalog import metric

#: The platform's radiology model, as TF Serving serves it (``model_name``).
MODEL = "resnet50_chest_xray"

REQUEST_COUNT = metric(
    ":tensorflow:serving:request_count", "counter",
    "Requests by model and gRPC status name (OK, INVALID_ARGUMENT ...).",
    source="tfserving", labels=("model_name", "status"),
)
REQUEST_LATENCY = metric(
    ":tensorflow:serving:request_latency", "histogram",
    "Wall time of a TF Serving request, in microseconds.",
    source="tfserving", labels=("model_name", "API", "entrypoint"), unit="microseconds",
)
RUNTIME_LATENCY = metric(
    ":tensorflow:serving:runtime_latency", "histogram",
    "Wall time spent in the TensorFlow runtime, in microseconds.",
    source="tfserving", labels=("model_name", "API", "runtime"), unit="microseconds",
)
REQUEST_EXAMPLE_COUNTS = metric(
    ":tensorflow:serving:request_example_counts", "histogram",
    "tf.Examples per request (Classify / Regress APIs).",
    source="tfserving", labels=("model",),
)
REQUEST_EXAMPLE_COUNT_TOTAL = metric(
    ":tensorflow:serving:request_example_count_total", "counter",
    "tf.Examples processed (Classify / Regress APIs).",
    source="tfserving", labels=("model",),
)
BATCH_QUEUING_LATENCY = metric(
    ":tensorflow:serving:batching_session:queuing_latency", "histogram",
    "Time a request waited in the batching queue, in microseconds (batching enabled only).",
    source="tfserving", labels=("thread_pool_name",), unit="microseconds",
)
BATCH_WRAPPED_RUN_COUNT = metric(
    ":tensorflow:serving:batching_session:wrapped_run_count", "counter",
    "Batched run calls on the wrapped session (batching enabled only).",
    source="tfserving",
)

#: Upper bounds, in microseconds, of TF Serving's request / runtime latency buckets.
LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(33))
