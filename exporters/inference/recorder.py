"""Per-request metrics shared by the in-path proxy and the client helper.

Both record exactly these families, so the sidecar's and a calling service's numbers line up
on one panel (tell them apart by ``job``)::

    medobs_inference_requests_total{code="200",model="resnet50_chest_xray",outcome="ok"} 1042.0
    medobs_inference_requests_total{code="504",model="resnet50_chest_xray",outcome="timeout"} 3.0
    medobs_inference_request_duration_seconds_bucket{le="0.1",model="resnet50_chest_xray",outcome="ok"} 998.0
    medobs_inference_batch_size_bucket{le="4.0",model="resnet50_chest_xray"} 1042.0
    medobs_inference_images_total{model="resnet50_chest_xray"} 3126.0
    medobs_inference_requests_in_flight{model="resnet50_chest_xray"} 2.0

Batch size and images count the predictions an answered request returned, not the instances
sent: reading the answer (a few hundred bytes) is cheap where parsing a 224x224x3 request
body is not, and it is what the model actually processed.
"""

from __future__ import annotations

import http.client
import json
import logging
from typing import Any, TypeVar

import requests
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from medobs.core.catalog import Metric
from medobs.core.catalog import inference as catalog

log = logging.getLogger("medobs.exporter.inference")

OK = "ok"
HTTP_ERROR = "http_error"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
MALFORMED_RESPONSE = "malformed_response"
#: Any other exception raised while calling the model (client helper only).
ERROR = "error"


def outcome_of_status(status: int) -> str:
    """The outcome an HTTP status stands for; 504 is TF Serving's DEADLINE_EXCEEDED, a timeout."""
    if 200 <= status < 300:
        return OK
    return TIMEOUT if status == 504 else HTTP_ERROR


def outcome_of_exception(error: BaseException) -> str:
    """The outcome an exception raised while calling the model stands for (requests, http.client, socket)."""
    if isinstance(error, (TimeoutError, requests.Timeout)):
        return TIMEOUT
    if isinstance(error, ValueError):  # json.JSONDecodeError, requests' JSONDecodeError
        return MALFORMED_RESPONSE
    if isinstance(error, (OSError, http.client.HTTPException)):  # refused, reset, requests' errors
        return CONNECTION_ERROR
    return ERROR


def reason(error: BaseException) -> str:
    """The root cause of a network error in a few words ("Connection refused"), not urllib3's paragraph."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        cause = pending.pop(0)
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        seen.add(id(cause))
        pending += [cause.__cause__, cause.__context__, getattr(cause, "reason", None), *cause.args]
    return type(error).__name__


def predictions_in(payload: bytes | str | dict) -> int | None:
    """How many instances a :predict answer has predictions for (None when it has none).

    Row format: ``{"predictions": [...]}``; columnar format: ``{"outputs": [...]}`` or
    ``{"outputs": {"name": [...], ...}}``.
    """
    if not isinstance(payload, dict):
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    if not isinstance(payload, dict):
        return None
    answer = payload.get("predictions", payload.get("outputs"))
    if isinstance(answer, dict) and answer:
        answer = next(iter(answer.values()))
    return len(answer) if isinstance(answer, list) else None


Instrument = TypeVar("Instrument", Counter, Gauge, Histogram)


def instrument(kind: type[Instrument], entry: Metric, registry: CollectorRegistry | None, **options: Any) -> Instrument:
    """A prometheus_client metric named, documented and labelled from its catalog entry."""
    return kind(entry.name, entry.help, list(entry.labels), registry=registry, **options)


class RequestMetrics:
    """The request families, registered in ``registry`` (the proxy keeps its own; the client
    helper uses prometheus_client's default registry).

    :meth:`started` and :meth:`finished` never raise: a failure in them is logged once, so
    recording can never break the request it records.
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY):
        self.requests = instrument(Counter, catalog.REQUESTS, registry)
        self.duration = instrument(Histogram, catalog.REQUEST_DURATION, registry, buckets=catalog.LATENCY_BUCKETS)
        self.batch_size = instrument(Histogram, catalog.BATCH_SIZE, registry, buckets=catalog.BATCH_SIZE_BUCKETS)
        self.images = instrument(Counter, catalog.IMAGES, registry)
        self.in_flight = instrument(Gauge, catalog.REQUESTS_IN_FLIGHT, registry)
        self._failed = False
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: prometheus_client's lookup checks and
        copies the labels each time, a tenth of what the proxy spends on a request."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def started(self, model: str) -> None:
        """A request to ``model`` was sent."""
        self._change_in_flight(model, 1)

    def finished(self, model: str, outcome: str, code: str, seconds: float, instances: int | None = None) -> None:
        """A request :meth:`started` ended; ``instances`` (the predictions returned) counts when it succeeded."""
        try:
            self._child(self.requests, model, outcome, code).inc()
            self._child(self.duration, model, outcome).observe(seconds)
            if outcome == OK and instances:
                self._child(self.batch_size, model).observe(instances)
                self._child(self.images, model).inc(instances)
        except Exception:
            self._log_failure()
        self._change_in_flight(model, -1)  # last: once nothing is in flight, all is recorded

    def _change_in_flight(self, model: str, change: int) -> None:
        try:
            self._child(self.in_flight, model).inc(change)
        except Exception:
            self._log_failure()

    def _log_failure(self) -> None:
        if not self._failed:
            self._failed = True
            log.exception("recording inference request metrics failed (the requests themselves are not affected)")
