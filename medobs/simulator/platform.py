"""The simulated platform: every part wired together, started and stopped as one.

::

    traffic loop ──HTTP──> gateway :8080 ──> study service ──> PostgreSQL (HikariCP pool)
                              │ rate limiter: a token bucket per route in Redis
                              │                    └──publish──> medical_data ──> inference worker
                              └──proxy──> TF Serving :8501 <──predict────────────────┘    │
                                                                  PostgreSQL (its own pool) <┘

    the cluster (cluster.py): pods, deployments, autoscalers, certificate, as seen by
    kubelet /metrics/cadvisor :10250, kube-state-metrics :8090, cert-manager :9402

:meth:`Platform.apply` changes the knobs of every part at once (the control endpoint and
``--scenario`` use it). Every random choice comes from the seed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import requests

from medobs import UserError
from medobs.core.catalog import gateway as catalog
from medobs.simulator import broker, cluster_metrics, control, httpserver
from medobs.simulator.broker import BrokerSettings, Consumer, Publisher
from medobs.simulator.cluster import Cluster, Work
from medobs.simulator.database import Database
from medobs.simulator.gateway import ROUTES, Gateway
from medobs.simulator.hikari import HikariPool
from medobs.simulator.ratelimit import RateLimiter
from medobs.simulator.scenarios import Knobs
from medobs.simulator.studies import APPLICATION as STUDY_SERVICE
from medobs.simulator.studies import StudyService
from medobs.simulator.tfserving import TFServing
from medobs.simulator.traffic import Traffic
from medobs.simulator.worker import APPLICATION as INFERENCE_WORKER
from medobs.simulator.worker import InferenceWorker

log = logging.getLogger("medobs.simulator")

CONNECT_WAIT = 10.0
#: How long the traffic waits for a --tfserving-upstream (the inference sidecar's proxy) to answer.
UPSTREAM_WAIT = 30.0
#: The gateway's ``uri`` tags of the study service's routes.
STUDY_SERVICE_URIS = frozenset(route.uri for route in ROUTES if route.route_id == STUDY_SERVICE)
#: The broker's backlog (KEDA's queue length) is read from the management API at most this often.
BACKLOG_REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class Config:
    """How to run the platform: where it listens, what it talks to, how it starts."""

    gateway_listen: tuple[str, int]
    tfserving_listen: tuple[str, int]
    control_listen: tuple[str, int]
    kubelet_listen: tuple[str, int]
    kube_state_metrics_listen: tuple[str, int]
    cert_manager_listen: tuple[str, int]
    broker: BrokerSettings
    database: Database
    seed: int = 0
    scenario: str = "healthy"
    knobs: Knobs = Knobs()
    #: Where the gateway's predict route and the worker send predicts (None: our TF Serving).
    tfserving_upstream: str | None = None
    #: The Redis of the gateway's rate limiter (None: no rate limiting).
    redis_url: str | None = None


def _url(listen: tuple[str, int]) -> str:
    host = "127.0.0.1" if listen[0] in ("", "0.0.0.0") else listen[0]
    return f"http://{host}:{listen[1]}"


class Platform:
    """The running simulator. ``start()`` raises UserError when PostgreSQL or RabbitMQ is unusable."""

    def __init__(self, config: Config):
        self.config = config
        self.name, self.knobs = config.scenario, config.knobs
        self._stops: list[Callable[[], None]] = []  # how to stop what start() started, in order
        self._started = time.time()
        self.tfserving = TFServing(seed=config.seed)
        self._apply_model_faults()
        self._backlog, self._backlog_read = 0, 0.0

    @property
    def urls(self) -> dict[str, str]:
        c = self.config
        return {"gateway": _url(c.gateway_listen), "tfserving": _url(c.tfserving_listen),
                "control": _url(c.control_listen), "kubelet": _url(c.kubelet_listen),
                "kube-state-metrics": _url(c.kube_state_metrics_listen), "cert-manager": _url(c.cert_manager_listen)}

    def start(self) -> None:
        logging.getLogger("pika").setLevel(logging.CRITICAL)  # our own lines say what matters
        c = self.config
        c.database.prepare()
        broker.prepare(c.broker)
        upstream = c.tfserving_upstream or self.urls["tfserving"]
        study_pool = HikariPool(STUDY_SERVICE, c.database.connector(STUDY_SERVICE), maximum_pool_size=10)
        worker_pool = HikariPool(INFERENCE_WORKER, c.database.connector(INFERENCE_WORKER), maximum_pool_size=5)
        self._stops += [worker_pool.close, study_pool.close]
        self.publisher = Publisher(c.broker)
        self.consumer = Consumer(c.broker, InferenceWorker(worker_pool, upstream).handle,
                                 lambda: self.knobs.consumer_stalled)
        limiter = None
        if c.redis_url:
            limiter = RateLimiter(c.redis_url, f"medobs-sim:{c.database.params.get('dbname', '')}")
            self._stops.append(limiter.close)
        self.gateway = Gateway(
            StudyService(study_pool, self.publisher, lambda: self.knobs, c.seed), upstream,
            lambda: self.knobs, c.seed, meters=[study_pool.families, worker_pool.families], limiter=limiter,
        )
        self.traffic = Traffic(self.urls["gateway"], lambda: self.knobs, c.seed)
        self.cluster = Cluster(c.seed, lambda: self.knobs, self.work, time.time())
        try:
            self._serving(self.tfserving.start(c.tfserving_listen))
            self._serving(self.gateway.start(c.gateway_listen))
            for listen, name, path, view in (
                (c.kubelet_listen, "kubelet", "/metrics/cadvisor", cluster_metrics.cadvisor),
                (c.kube_state_metrics_listen, "kube-state-metrics", "/metrics", cluster_metrics.kube_state_metrics),
                (c.cert_manager_listen, "cert-manager", "/metrics", cluster_metrics.cert_manager),
            ):
                self._serving(httpserver.serve_metrics(listen, name, path, self._view(view)))
            self._serving(control.start(self, c.control_listen))
        except UserError:
            self.stop()
            raise
        for link in (self.publisher, self.consumer):
            self._stops.insert(0, link.stop)
            link.start()
        self._wait_connected()
        if c.tfserving_upstream:
            self._wait_for_upstream(c.tfserving_upstream)
        self._stops.insert(0, self.traffic.stop)
        self.traffic.start()

    def _view(self, view: Callable[[Cluster, float], list[Any]]) -> Callable[[], list[Any]]:
        return lambda: view(self.cluster, time.time())

    def _serving(self, server: ThreadingHTTPServer) -> None:
        def stop() -> None:
            server.shutdown()
            server.server_close()

        self._stops.insert(0, stop)

    def _wait_connected(self) -> None:
        deadline = time.monotonic() + CONNECT_WAIT
        while not (self.publisher.connected and self.consumer.connected) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _wait_for_upstream(self, url: str) -> None:
        """Hold the traffic until the predict upstream answers (the sidecar may start after us)."""
        deadline = time.monotonic() + UPSTREAM_WAIT
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url.rstrip('/')}/v1/models/{self.tfserving.model}", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        log.warning("the predict upstream %s does not answer; sending traffic anyway", url)

    def stop(self) -> None:
        """Stop everything start() started, newest first (traffic before the services it calls)."""
        while self._stops:
            self._stops.pop(0)()

    # -- scenarios ---------------------------------------------------------------------------

    def apply(self, name: str, knobs: Knobs) -> None:
        self.name, self.knobs = name, knobs
        self._apply_model_faults()
        log.info("scenario %s: %s", name, ", ".join(
            f"{k}={v}" for k, v in knobs.as_dict().items() if v != Knobs().as_dict()[k]) or "no faults")

    def _apply_model_faults(self) -> None:
        faults = self.tfserving.faults
        loaded = self.knobs.model_available
        faults.model_state, faults.error_code = ("AVAILABLE", "OK") if loaded else ("END", "UNKNOWN")
        faults.extra_latency = self.knobs.model_extra_latency

    # -- what it does ------------------------------------------------------------------------

    def work(self) -> Work:
        """What the platform has done, for the cluster's resource usage and autoscalers."""
        uri = catalog.HTTP_SERVER_REQUESTS.labels.index("uri")
        served = self.gateway.http_requests.snapshot()
        return Work(
            requests=sum(count for count, _ in served.values()),
            study_requests=sum(count for key, (count, _) in served.items() if key[uri] in STUDY_SERVICE_URIS),
            predictions=self.tfserving.answered,
            messages=sum(self.consumer.counts.values()),
            backlog=self._queue_backlog(),
        )

    def _queue_backlog(self) -> int:
        """Ready messages in medical_data (KEDA's queue length), read now and then; the last value
        while the management API does not answer."""
        if time.monotonic() - self._backlog_read >= BACKLOG_REFRESH_SECONDS:
            self._backlog_read = time.monotonic()
            try:
                self._backlog = self.config.broker.queue_depths()[broker.QUEUE]["messages_ready"]
            except (requests.RequestException, ValueError, KeyError):
                pass
        return self._backlog

    def status(self) -> dict[str, Any]:
        """What the control endpoint's ``GET /status`` shows."""
        try:
            queues: dict[str, Any] = self.config.broker.queue_depths()
        except (requests.RequestException, ValueError) as error:
            queues = {"error": f"management API: {type(error).__name__}"}
        return {
            "scenario": {"name": self.name, "knobs": self.knobs.as_dict()},
            "uptime_seconds": round(time.time() - self._started, 1),
            "urls": self.urls,
            "postgresql": self.config.database.describe(),
            "rabbitmq": {
                "broker": self.config.broker.describe(),
                "publisher_connected": self.publisher.connected,
                "consumer_connected": self.consumer.connected,
                "published": self.publisher.published,
                "consumed": {verdict.value: count for verdict, count in self.consumer.counts.items()},
                "queues": queues,
            },
            "traffic": {"responses": dict(sorted(self.traffic.statuses.items())), "skipped": self.traffic.skipped},
            "kubernetes": self._cluster_status(),
        }

    def _cluster_status(self) -> dict[str, str]:
        """``{deployment: "ready/replicas"}``."""
        with self.cluster.observed(time.time()) as cluster:
            return {name: f"{d.ready_replicas}/{len(d.pods)}" for name, d in cluster.deployments.items()}


def run_until_stopped(platform: Platform, stopped: threading.Event) -> None:
    """Start, log where everything is, and run until ``stopped`` is set."""
    platform.start()
    try:
        for part, url in platform.urls.items():
            log.info("%s on %s", part, url)
        log.info("scenario %s (seed %d); change it with POST %s/scenario", platform.name,
                 platform.config.seed, platform.urls["control"])
        stopped.wait()
    finally:
        platform.stop()
