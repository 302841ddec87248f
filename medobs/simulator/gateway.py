"""The API gateway (Spring Cloud Gateway 3.1 on Spring Boot 2.7), with its actuator.

Routes, each timed by micrometer as ``http_server_requests_seconds`` (the templated ``uri``,
``method``, ``status``, ``outcome``, ``exception``, with the platform's SLO buckets) and as
``spring_cloud_gateway_requests_seconds`` (``routeId``, ``routeUri``, ``httpStatusCode`` ...):

- ``study-service``: ``POST /api/v1/studies``, ``GET /api/v1/studies/{studyId}``,
  ``GET /api/v1/studies/{studyId}/findings`` (:class:`~medobs.simulator.studies.StudyService`);
- ``ml-inference``: ``POST /api/v1/inference/predict``, proxied to TF Serving's
  ``/v1/models/resnet50_chest_xray:predict``; its answer passes through unchanged.

The actuator (``/actuator/prometheus``, ``/actuator/health``) is not timed, as the platform's
MeterFilter denies ``/actuator/**``; any other path answers 404 with ``uri="NOT_FOUND"``
(``exception="ResponseStatusException"``). Routed requests carry their route's path template
as ``uri``: stock Spring Boot 2.7 tags them ``UNKNOWN`` (spring-cloud-gateway#891), so the
platform's gateway is taken to register the usual path-pattern tags contributor.
With a Redis, every routed request first passes the ``RequestRateLimiter`` filter
(:mod:`~medobs.simulator.ratelimit`: a token bucket per route in Redis; 429 when it is empty).
Faults: ``error_ratio`` of routed requests get the upstream's 500 (an exact, evenly spread
share), ``extra_latency`` seconds are added to each routed request. Sample of the exposition::

    http_server_requests_seconds_bucket{application="api-gateway",exception="None",le="0.1",method="GET",outcome="SUCCESS",status="200",uri="/api/v1/studies/{studyId}"} 37.0
    spring_cloud_gateway_requests_seconds_count{application="api-gateway",httpMethod="GET",httpStatusCode="200",outcome="SUCCESSFUL",routeId="study-service",routeUri="lb://study-service",status="OK"} 38.0
    hikaricp_connections_active{application="study-service",pool="HikariPool-1"} 1.0
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from prometheus_client.core import Metric

from medobs.core.catalog import gateway as catalog
from medobs.simulator import httpserver
from medobs.simulator.chance import Dice, Share
from medobs.simulator.micrometer import TimerFamily, exposition
from medobs.simulator.ratelimit import RateLimiter
from medobs.simulator.scenarios import Knobs
from medobs.simulator.studies import ServiceError, StudyService
from medobs.simulator.tfserving import MODEL

APPLICATION = "api-gateway"
STUDY_SERVICE_URI = "lb://study-service"
#: spring.cloud.gateway.httpclient.response-timeout of the platform.
RESPONSE_TIMEOUT = 10.0
_OUTCOMES = {1: "INFORMATIONAL", 2: "SUCCESS", 3: "REDIRECTION", 4: "CLIENT_ERROR", 5: "SERVER_ERROR"}


@dataclass(frozen=True)
class Route:
    route_id: str
    method: str
    uri: str  # micrometer's uri tag: the path template
    pattern: re.Pattern[str]
    #: What answers it: a StudyService method, or "predict" (proxied to TF Serving).
    action: str
    #: Median seconds the gateway and upstream spend besides real work (database, broker, TF Serving).
    service_time: float


ROUTES = (
    Route("study-service", "POST", "/api/v1/studies", re.compile(r"/api/v1/studies"), "upload", 0.030),
    Route("study-service", "GET", "/api/v1/studies/{studyId}", re.compile(r"/api/v1/studies/(\d+)"), "get", 0.015),
    Route("study-service", "GET", "/api/v1/studies/{studyId}/findings",
          re.compile(r"/api/v1/studies/(\d+)/findings"), "findings", 0.012),
    Route("ml-inference", "POST", "/api/v1/inference/predict", re.compile(r"/api/v1/inference/predict"),
          "predict", 0.003),
)


def match(method: str, path: str) -> tuple[Route, str | None] | None:
    """The route a request takes, with its path variable (None when no route matches)."""
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found and route.method == method:
            return route, (found.group(1) if found.groups() else None)
    return None


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    exception: str = "None"  # micrometer's exception tag: the gateway's own exception, if any
    proxied: bool = False  # the upstream's answer, passed through unchanged


def http_outcome(status: int) -> str:
    """micrometer's Outcome of a status (SUCCESS, CLIENT_ERROR, SERVER_ERROR ...)."""
    return _OUTCOMES.get(status // 100, "UNKNOWN")


def route_tags(status: int) -> dict[str, str]:
    """Spring Cloud Gateway's GatewayHttpTagsProvider: the HttpStatus series and name, or CUSTOM."""
    try:
        name = HTTPStatus(status).name
    except ValueError:
        return {"httpStatusCode": str(status), "outcome": "CUSTOM", "status": str(status)}
    series = {2: "SUCCESSFUL"}.get(status // 100, _OUTCOMES.get(status // 100, "CUSTOM"))
    return {"httpStatusCode": str(status), "outcome": series, "status": name}


class Gateway:
    """The gateway's request handling and meters; :meth:`start` serves it over HTTP."""

    def __init__(
        self,
        studies: StudyService,
        tfserving_url: str,
        knobs: Callable[[], Knobs],
        seed: int,
        meters: Iterable[Callable[[], list[Metric]]] = (),
        limiter: RateLimiter | None = None,
    ):
        self.studies, self.knobs, self.limiter = studies, knobs, limiter
        self.tfserving_url = tfserving_url.rstrip("/")
        self.http_requests = TimerFamily(catalog.HTTP_SERVER_REQUESTS, catalog.HTTP_SERVER_REQUESTS_MAX,
                                         catalog.SLO_BUCKETS)
        self.routed = TimerFamily(catalog.GATEWAY_REQUESTS, catalog.GATEWAY_REQUESTS_MAX)
        self.errors = Share(seed, "gateway-errors")
        self.dice = Dice(seed, "gateway-latency")
        self.meters = list(meters)
        self._sessions = httpserver.Sessions()

    # -- requests ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        """Answer one request and time it as micrometer and the gateway filter do."""
        started = time.monotonic()
        found = match(method, path)
        if found is None:
            # no route: WebFlux raises ResponseStatusException(404), tagged uri NOT_FOUND
            reply = Reply(404, {"error": "Not Found"}, exception="ResponseStatusException")
            self._time(started, method, "NOT_FOUND", reply)
            return reply
        route, variable = found
        if self.limiter is not None and not self.limiter.allows(route.route_id):
            reply = Reply(429, {"error": "Too Many Requests"})  # the RequestRateLimiter filter refused it
            self._time(started, method, route.uri, reply, route)
            return reply
        knobs = self.knobs()
        self.errors.ratio = knobs.error_ratio
        failing = self.errors.pick()
        time.sleep(route.service_time * self.dice.jitter() * (0.3 if failing else 1.0) + knobs.extra_latency)
        if failing:
            reply = Reply(500, {"error": "Internal Server Error", "message": "upstream failure (error-burst)"})
        elif route.action == "predict":
            reply = self._proxy_predict(body)
        else:
            reply = self._study_service(route.action, variable, body)
        self._time(started, method, route.uri, reply, route)
        return reply

    def _study_service(self, action: str, variable: str | None, body: bytes) -> Reply:
        try:
            if action == "upload":
                status, payload = self.studies.upload(body)
            else:
                status, payload = getattr(self.studies, action)(int(variable or 0))
        except ServiceError as error:
            status, payload = error.answer()
        return Reply(status, payload)

    def _proxy_predict(self, body: bytes) -> Reply:
        try:
            answer = self._sessions.get().post(
                f"{self.tfserving_url}/v1/models/{MODEL}:predict", data=body,
                headers={"Content-Type": "application/json"}, timeout=RESPONSE_TIMEOUT,
            )
        except requests.Timeout:
            return Reply(504, {"error": "Gateway Timeout"}, exception="ResponseStatusException")
        except requests.RequestException:
            return Reply(500, {"error": "Internal Server Error"}, exception="AnnotatedConnectException")
        try:
            payload = answer.json()
        except ValueError:
            payload = {"error": answer.text[:200]}
        return Reply(answer.status_code, payload, proxied=True)

    def _time(self, started: float, method: str, uri: str, reply: Reply, route: Route | None = None) -> None:
        seconds = time.monotonic() - started
        self.http_requests.record(
            seconds, application=APPLICATION, uri=uri, method=method, status=str(reply.status),
            outcome=http_outcome(reply.status), exception=reply.exception,
        )
        if route is not None:
            route_uri = self.tfserving_url if route.action == "predict" else STUDY_SERVICE_URI
            self.routed.record(seconds, application=APPLICATION, routeId=route.route_id, routeUri=route_uri,
                               httpMethod=method, **route_tags(reply.status))

    # -- actuator ----------------------------------------------------------------------------

    def families(self) -> list[Metric]:
        families = self.http_requests.families() + self.routed.families()
        for meter in self.meters:
            families.extend(meter())
        return families

    def start(self, listen: tuple[str, int]) -> ThreadingHTTPServer:
        """Serve in a background thread; the caller owns ``shutdown()``."""
        return httpserver.serve(_handler(self), listen, "gateway")


_HEALTH = {
    "/actuator/health": {"status": "UP", "groups": ["liveness", "readiness"]},
    "/actuator/health/liveness": {"status": "UP"},
    "/actuator/health/readiness": {"status": "UP"},
}


def _spring_error(status: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Spring Boot's error attributes around a failed request's own fields."""
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "path": path, "status": status, "requestId": uuid.uuid4().hex[:8], **body,
    }


def _handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(httpserver.Handler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.route == "/actuator/prometheus":
                self.send_body(200, *exposition(gateway.families()))
            elif self.route in _HEALTH:
                self.send_json(200, _HEALTH[self.route])
            else:
                self._forward("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._forward("POST")

        def _forward(self, method: str) -> None:
            reply = gateway.handle(method, self.route, self.read_body())
            failed = reply.status >= 400 and not reply.proxied
            self.send_json(reply.status, _spring_error(reply.status, self.route, reply.body) if failed else reply.body)

    return Handler
