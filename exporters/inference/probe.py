"""The synthetic probe: a golden :predict request at a low rate, timed end to end.

TF Serving counts only the requests that reached the model and times only those that
succeeded; the probe sees what a caller sees, refusals, errors and hangs included::

    medobs_inference_probe_requests_total{code="200",model="resnet50_chest_xray",outcome="ok"} 240.0
    medobs_inference_probe_requests_total{code="",model="resnet50_chest_xray",outcome="timeout"} 2.0
    medobs_inference_probe_duration_seconds_bucket{le="0.1",model="resnet50_chest_xray",outcome="ok"} 236.0

Outcomes: ``ok``, ``http_error`` (the status in ``code``), ``timeout`` (no answer within the
probe's timeout, or TF Serving's 504), ``malformed_response`` (a 200 whose body is not a
prediction for the golden input), ``connection_error``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter, Histogram

from exporters.inference.recorder import (
    MALFORMED_RESPONSE,
    OK,
    instrument,
    outcome_of_exception,
    outcome_of_status,
    predictions_in,
    reason,
)
from medobs.core.catalog import inference as catalog
from medobs.core.runtime import safe_url

log = logging.getLogger("medobs.exporter.inference.probe")

#: The default golden input: one 224x224 RGB image, ResNet-50's input shape.
DEFAULT_SHAPE = (224, 224, 3)


def image_body(shape: Sequence[int] = DEFAULT_SHAPE, value: float = 0.5) -> bytes:
    """A :predict body holding one constant image tensor of ``shape``."""
    tensor: Any = value
    for size in reversed(shape):
        tensor = [tensor] * size
    return json.dumps({"instances": [tensor]}, separators=(",", ":")).encode()


def instances_in(body: bytes) -> int | None:
    """How many instances a :predict request body sends (None when it does not say in row format)."""
    request = json.loads(body)
    if not isinstance(request, dict) or not isinstance(request.get("instances", request.get("inputs")), (list, dict)):
        raise ValueError('a :predict body is a JSON object with "instances" or "inputs"')
    instances = request.get("instances")
    return len(instances) if isinstance(instances, list) else None


class Probe:
    """Sends ``body`` to each model's :predict every ``interval`` seconds, in a background thread."""

    def __init__(
        self,
        url: str,
        models: Sequence[str],
        body: bytes,
        *,
        interval: float,
        timeout: float,
        registry: CollectorRegistry,
    ):
        self.url = url.rstrip("/")
        self.models = tuple(models)
        self.body = body
        self.expected = instances_in(body)
        self.interval, self.timeout = interval, timeout
        self.duration = instrument(Histogram, catalog.PROBE_DURATION, registry, buckets=catalog.LATENCY_BUCKETS)
        self.requests = instrument(Counter, catalog.PROBE_REQUESTS, registry)
        self._session = requests.Session()
        self._last: dict[str, str] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def probe(self, model: str) -> str:
        """One golden request to ``model``; records and returns its outcome."""
        url = f"{self.url}/v1/models/{model}:predict"
        code = ""
        started = time.perf_counter()
        try:
            answer = self._session.post(
                url, data=self.body, headers={"Content-Type": "application/json"}, timeout=self.timeout
            )
            elapsed = time.perf_counter() - started
            code, outcome = str(answer.status_code), outcome_of_status(answer.status_code)
            detail = f"HTTP {code}: {answer.text[:200].strip()!r}"
            if outcome == OK:
                predicted = predictions_in(answer.content)
                if predicted is None or predicted != (self.expected or predicted):
                    outcome, detail = MALFORMED_RESPONSE, f"not a prediction for the golden input: {answer.text[:80]!r}"
        except requests.RequestException as error:
            elapsed = time.perf_counter() - started
            outcome, detail = outcome_of_exception(error), f"{reason(error)} after {elapsed:.1f}s"
        self.requests.labels(model, outcome, code).inc()
        self.duration.labels(model, outcome).observe(elapsed)
        self._log_change(model, outcome, f"{safe_url(url)}: {detail}")
        return outcome

    def _log_change(self, model: str, outcome: str, detail: str) -> None:
        previous, self._last[model] = self._last.get(model), outcome
        if outcome == previous:
            return
        if outcome != OK:
            log.warning("probe of %s: %s (%s)", model, outcome, detail)
        elif previous is not None:
            log.info("probe of %s: ok again", model)

    def run(self) -> None:
        """Probe every model, then wait ``interval``, until :meth:`stop`."""
        while not self._stopped.is_set():
            for model in self.models:
                try:
                    self.probe(model)
                except Exception:  # a bug must not end the probe thread
                    log.exception("probe of %s failed unexpectedly", model)
            self._stopped.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 1)
