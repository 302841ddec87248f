"""A TensorFlow Serving 2.10 REST endpoint that behaves, and reports metrics, the way TF Serving does.

TF Serving cannot be installed on the development machines; this is the test partner of the
inference exporter and the ML half of the platform simulator. It answers:

- ``GET /v1/models/NAME`` (and ``/versions/N``): ``{"model_version_status": [{"version": "1",
  "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}``, or 404
  ``{"error": "Could not find any versions of model NAME"}`` when no version is loaded;
- ``POST /v1/models/NAME[/versions/N]:predict`` with ``{"instances": [...]}`` or ``{"inputs": ...}``:
  ``{"predictions": [[...], ...]}`` after a simulated inference time; errors as TF Serving writes
  them (``{"error": "..."}`` with the HTTP status of its gRPC code: 400, 404, 500, 504 ...);
- ``GET /monitoring/prometheus/metrics`` (404 when monitoring is off, as in TF Serving): TF
  Serving's exposition: no HELP lines, ``:tensorflow:serving:*`` names, latency in
  microseconds with ``Exponential(10, 1.8, 33)`` buckets, counters only for requests that
  reached the model, latency only for those that succeeded::

      # TYPE :tensorflow:serving:request_count counter
      :tensorflow:serving:request_count{model_name="resnet50_chest_xray",status="OK"} 42
      # TYPE :tensorflow:serving:request_latency histogram
      :tensorflow:serving:request_latency_bucket{model_name="resnet50_chest_xray",API="predict",entrypoint="REST",le="10"} 0
      ...

Faults (:class:`Faults`) change its behaviour while it runs: the model's state, extra latency,
a share of internal errors, a share of requests that hang until the deadline.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from medobs.core.catalog import tfserving
from medobs.simulator import httpserver

MODEL = tfserving.MODEL
#: The radiology model's classes, one probability each in a prediction.
CLASSES = ("normal", "pneumonia", "effusion", "cardiomegaly")
#: A tiny image tensor for predict requests (the simulator does not look at pixels).
SAMPLE_IMAGE = [[[0.5, 0.5, 0.5]] * 4] * 4
MONITORING_PATH = "/monitoring/prometheus/metrics"

# gRPC code -> HTTP status, as TF Serving's http_server.cc maps them.
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
    "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}
MODEL_STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")
_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?(?::(predict|classify|regress))?$", re.IGNORECASE)
QUEUING_BUCKETS_US = tuple(100 * 1.2**i for i in range(52))


@dataclass
class Faults:
    """What is wrong with the model server right now (all off: healthy).

    ``model_state``: the version's state; ``None`` means no version loaded at all (the model
    status API answers 404). ``error_code``: the status a failed load reports (state END).
    """

    model_state: str | None = "AVAILABLE"
    error_code: str = "OK"
    extra_latency: float = 0.0
    error_ratio: float = 0.0
    timeout_ratio: float = 0.0


class _Histogram:
    """Cumulative buckets as TF's Sampler keeps them (the last bucket unbounded)."""

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = next((i for i, bound in enumerate(self.bounds) if value < bound), len(self.bounds))
        self.counts[index] += 1
        self.sum += value


def _six_digits(value: float) -> str:
    """absl::StrCat's double formatting (six significant digits), which TF Serving prints."""
    return f"{value:.6g}"


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in pairs)


class TFServing:
    """The simulated model server: request handling, metrics, and the faults in force."""

    def __init__(
        self,
        model: str = MODEL,
        version: int = 1,
        *,
        seed: int = 0,
        base_latency: float = 0.040,
        per_instance_latency: float = 0.006,
        request_deadline: float = 30.0,
        monitoring: bool = True,
        batching: bool = True,
    ):
        self.model, self.version = model, version
        self.base_latency, self.per_instance_latency = base_latency, per_instance_latency
        self.request_deadline = request_deadline
        self.monitoring, self.batching = monitoring, batching
        self.faults = Faults()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._request_count: dict[str, int] = {}
        self._request_latency = _Histogram(tfserving.LATENCY_BUCKETS_US)
        self._runtime_latency = _Histogram(tfserving.LATENCY_BUCKETS_US)
        self._queuing_latency = _Histogram(QUEUING_BUCKETS_US)
        self._batches = 0

    # -- the REST API ------------------------------------------------------------------------

    def model_status(self, name: str, version: str | None) -> tuple[int, dict[str, Any]]:
        state = self.faults.model_state
        if name != self.model or state is None or (version and int(version) != self.version):
            which = f"version {version} of model {name}" if version else f"any versions of model {name}"
            return 404, {"error": f"Could not find {which}"}
        message = "" if self.faults.error_code == "OK" else f"Failed to load servable {name} version {self.version}"
        entry = {
            "version": str(self.version),
            "state": state,
            "status": {"error_code": self.faults.error_code, "error_message": message},
        }
        return 200, {"model_version_status": [entry]}

    def predict(self, name: str, version: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        started = time.monotonic()
        if name != self.model or self.faults.model_state != "AVAILABLE" or (version and int(version) != self.version):
            spec = f"Specific({name}, {version})" if version else f"Latest({name})"
            return 404, {"error": f"Servable not found for request: {spec}"}
        try:
            request = json.loads(body)
            instances = request["instances"] if "instances" in request else request["inputs"]
            if not isinstance(instances, list) or not instances:
                raise ValueError("instances must be a non-empty list")
        except (ValueError, KeyError, TypeError) as error:  # rejected before the model runs: not counted
            return 400, {"error": f"JSON Parse error: {error}" if isinstance(error, json.JSONDecodeError)
                         else f"Missing 'inputs' or 'instances' key: {error}"}
        with self._lock:
            roll = self._random.random()
            jitter = self._random.lognormvariate(0, 0.25)
        if roll < self.faults.timeout_ratio:
            time.sleep(self.request_deadline)
            self._count("DEADLINE_EXCEEDED")
            return 504, {"error": "Deadline Exceeded"}
        queuing = 0.0002 * jitter if self.batching else 0.0
        runtime = (self.base_latency + self.per_instance_latency * len(instances)) * jitter + self.faults.extra_latency
        time.sleep(queuing + runtime)
        if roll < self.faults.timeout_ratio + self.faults.error_ratio:
            self._count("INTERNAL")
            return 500, {"error": "Internal: CUDA runtime implicit initialization on GPU:0 failed"}
        predictions = [self._prediction() for _ in instances]
        with self._lock:
            self._request_count["OK"] = self._request_count.get("OK", 0) + 1
            self._runtime_latency.observe(runtime * 1e6)
            self._request_latency.observe((time.monotonic() - started) * 1e6)
            if self.batching:
                self._queuing_latency.observe(queuing * 1e6)
                self._batches += 1
        return 200, {"predictions": predictions}

    @property
    def answered(self) -> int:
        """Predict requests answered successfully so far."""
        with self._lock:
            return self._request_count.get("OK", 0)

    def _prediction(self) -> list[float]:
        with self._lock:
            weights = [self._random.random() for _ in CLASSES]
        total = sum(weights)
        return [round(w / total, 6) for w in weights]

    def _count(self, status: str) -> None:
        with self._lock:
            self._request_count[status] = self._request_count.get(status, 0) + 1

    # -- HTTP ----------------------------------------------------------------------------------

    def start(self, listen: tuple[str, int]) -> ThreadingHTTPServer:
        """Serve in a background thread; the caller owns ``shutdown()``."""
        return httpserver.serve(_handler(self), listen, "tfserving")

    # -- /monitoring/prometheus/metrics ------------------------------------------------------

    def metrics_text(self) -> str:
        """The exposition, families in TF's registry order (by metric path), TYPE lines always."""
        model = ("model_name", self.model)
        families: dict[str, list[str]] = {}
        with self._lock:
            families[tfserving.REQUEST_COUNT.name] = [
                f"{tfserving.REQUEST_COUNT}{{{_labels([model, ('status', status)])}}} {count}"
                for status, count in sorted(self._request_count.items())
            ]
            families[tfserving.REQUEST_LATENCY.name] = _histogram_lines(
                tfserving.REQUEST_LATENCY.name, self._request_latency, [model, ("API", "predict"), ("entrypoint", "REST")]
            )
            families[tfserving.RUNTIME_LATENCY.name] = _histogram_lines(
                tfserving.RUNTIME_LATENCY.name, self._runtime_latency, [model, ("API", "Predict"), ("runtime", "TF1")]
            )
            if self.batching:
                families[tfserving.BATCH_QUEUING_LATENCY.name] = _histogram_lines(
                    tfserving.BATCH_QUEUING_LATENCY.name, self._queuing_latency,
                    [("thread_pool_name", "model_batch_threads")],
                )
                families[tfserving.BATCH_WRAPPED_RUN_COUNT.name] = (
                    [f"{tfserving.BATCH_WRAPPED_RUN_COUNT}{{}} {self._batches}"] if self._batches else []
                )
        lines = []
        for name, samples in sorted(families.items()):
            kind = "histogram" if name.endswith("latency") else "counter"
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, histogram: _Histogram, labels: list[tuple[str, str]]) -> list[str]:
    """A histogram's samples as TF Serving's exporter prints them (none before the first value)."""
    total = sum(histogram.counts)
    if not total:
        return []
    prefix = _labels(labels)
    lines, cumulative = [], 0
    for i, count in enumerate(histogram.counts):
        cumulative += count
        bound = _six_digits(histogram.bounds[i]) if i < len(histogram.bounds) else "+Inf"
        lines.append(f'{name}_bucket{{{prefix},le="{bound}"}} {cumulative}')
    lines.append(f"{name}_sum{{{prefix}}} {_six_digits(histogram.sum)}")
    lines.append(f"{name}_count{{{prefix}}} {total}")
    return lines


def _handler(sim: TFServing) -> type[BaseHTTPRequestHandler]:
    class Handler(httpserver.Handler):
        def do_GET(self) -> None:  # noqa: N802
            if self.route == MONITORING_PATH and sim.monitoring:
                self.send_body(200, sim.metrics_text().encode(), "text/plain")
                return
            match = _PATH.fullmatch(self.route)
            if match and not match.group(3):
                self.send_json(*sim.model_status(match.group(1), match.group(2)))
            else:
                self.send_body(404, b"", "text/plain")

        def read_body(self) -> bytes:
            """Chunked bodies too, as TF Serving reads them (the inference proxy streams a caller's chunked body on)."""
            if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                return super().read_body()
            chunks = []
            while (size := int(self.rfile.readline(1024).split(b";", 1)[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            while self.rfile.readline(1024).strip():  # trailers
                pass
            return b"".join(chunks)

        def do_POST(self) -> None:  # noqa: N802
            body = self.read_body()
            match = _PATH.fullmatch(self.route)
            if match and (match.group(3) or "").lower() == "predict":
                self.send_json(*sim.predict(match.group(1), match.group(2), body))
            elif match and match.group(3):
                self.send_json(501, {"error": f"{match.group(3)} is not supported by this model's signature"})
            else:
                self.send_body(404, b"", "text/plain")

    return Handler
