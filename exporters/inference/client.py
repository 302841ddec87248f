"""Instrumentation for Python services that call the model: the proxy's metric names, in-process.

A service that calls TF Serving records what it sees under exactly the names the sidecar's
proxy uses (:mod:`recorder`), so client-side and sidecar numbers share one panel and differ
only in ``job``::

    from exporters.inference.client import instrument_predict, track_predict

    @instrument_predict("resnet50_chest_xray")
    def classify(images):
        return session.post(f"{TF_SERVING}/v1/models/resnet50_chest_xray:predict",
                            json={"instances": images}, timeout=10)

    with track_predict("resnet50_chest_xray") as call:
        answer = session.post(url, json=body, timeout=10)
        call.answered(answer)

The families live in prometheus_client's default registry unless a :class:`RequestMetrics` of
your own is passed; expose them as the service already does (``start_http_server``, a
framework's /metrics). An exception raised in the block is recorded by kind (``timeout``,
``connection_error``, ``malformed_response``, the HTTP status of ``raise_for_status()``, else
``error``) and raised again. Recording never raises.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from exporters.inference.recorder import (
    OK,
    RequestMetrics,
    outcome_of_exception,
    outcome_of_status,
    predictions_in,
)

_default: RequestMetrics | None = None
_default_lock = threading.Lock()
Function = TypeVar("Function", bound=Callable[..., Any])


def default_metrics() -> RequestMetrics:
    """The request families in prometheus_client's default registry (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RequestMetrics()
        return _default


class Call:
    """One call being timed; :meth:`answered` tells it what came back (without it: ``ok``, no code)."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.instances: int | None = None

    def answered(self, answer: Any) -> None:
        """``answer``: a response (requests / httpx ``status_code``, urllib3 ``status``), the decoded
        JSON answer, or the list of predictions."""
        if isinstance(answer, dict):
            self.status, self.instances = 200, predictions_in(answer)
        elif isinstance(answer, list):
            self.status, self.instances = 200, len(answer)
        else:
            status = getattr(answer, "status_code", getattr(answer, "status", None))
            self.status = status if isinstance(status, int) else None
            if self.status is not None and outcome_of_status(self.status) == OK:
                self.instances = predictions_in(getattr(answer, "content", getattr(answer, "data", b"")))

    def outcome(self) -> tuple[str, str]:
        if self.status is None:
            return OK, ""
        return outcome_of_status(self.status), str(self.status)


def _failure(error: BaseException) -> tuple[str, str]:
    """Outcome and code of an exception; an HTTP error raised by ``raise_for_status()`` keeps its status."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(status, int):
        return outcome_of_status(status), str(status)
    return outcome_of_exception(error), ""


@contextmanager
def track_predict(model: str, metrics: RequestMetrics | None = None) -> Iterator[Call]:
    """Time the block as one predict request to ``model``."""
    metrics = metrics or default_metrics()
    call = Call()
    metrics.started(model)
    started = time.perf_counter()
    try:
        yield call
    except BaseException as error:
        metrics.finished(model, *_failure(error), time.perf_counter() - started)
        raise
    metrics.finished(model, *call.outcome(), time.perf_counter() - started, call.instances)


def instrument_predict(model: str, metrics: RequestMetrics | None = None) -> Callable[[Function], Function]:
    """Decorator: time each call of the function as one predict request to ``model``; its return
    value (a response, the decoded answer, or the predictions) says what came back."""

    def decorate(function: Function) -> Function:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with track_predict(model, metrics) as call:
                result = function(*args, **kwargs)
                call.answered(result)
                return result

        return timed  # type: ignore[return-value]

    return decorate
