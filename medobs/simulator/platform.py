"""The simulated platform: every part wired together, started and stopped as one.

::

    traffic loop ──HTTP──> gateway :8080 ──> study service ──> PostgreSQL (HikariCP pool)
                              │                    └──publish──> medical_data ──> inference worker
                              └──proxy──> TF Serving :8501 <──predict────────────────┘    │
                                                                  PostgreSQL (its own pool) <┘

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
from medobs.simulator import broker, control
from medobs.simulator.broker import BrokerSettings, Consumer, Publisher
from medobs.simulator.database import Database
from medobs.simulator.gateway import Gateway
from medobs.simulator.hikari import HikariPool
from medobs.simulator.scenarios import Knobs
from medobs.simulator.studies import APPLICATION as STUDY_SERVICE
from medobs.simulator.studies import StudyService
from medobs.simulator.tfserving import TFServing
from medobs.simulator.traffic import Traffic
from medobs.simulator.worker import APPLICATION as INFERENCE_WORKER
from medobs.simulator.worker import InferenceWorker

log = logging.getLogger("medobs.simulator")

CONNECT_WAIT = 10.0


@dataclass(frozen=True)
class Config:
    """How to run the platform: where it listens, what it talks to, how it starts."""

    gateway_listen: tuple[str, int]
    tfserving_listen: tuple[str, int]
    control_listen: tuple[str, int]
    broker: BrokerSettings
    database: Database
    seed: int = 0
    scenario: str = "healthy"
    knobs: Knobs = Knobs()
    #: Where the gateway's predict route and the worker send predicts (None: our TF Serving).
    tfserving_upstream: str | None = None


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

    @property
    def urls(self) -> dict[str, str]:
        c = self.config
        return {"gateway": _url(c.gateway_listen), "tfserving": _url(c.tfserving_listen),
                "control": _url(c.control_listen)}

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
        self.gateway = Gateway(
            StudyService(study_pool, self.publisher, lambda: self.knobs, c.seed), upstream,
            lambda: self.knobs, c.seed, meters=[study_pool.families, worker_pool.families],
        )
        self.traffic = Traffic(self.urls["gateway"], lambda: self.knobs, c.seed)
        try:
            self._serving(self.tfserving.start(c.tfserving_listen))
            self._serving(self.gateway.start(c.gateway_listen))
            self._serving(control.start(self, c.control_listen))
        except UserError:
            self.stop()
            raise
        for link in (self.publisher, self.consumer):
            self._stops.insert(0, link.stop)
            link.start()
        self._wait_connected()
        self._stops.insert(0, self.traffic.stop)
        self.traffic.start()

    def _serving(self, server: ThreadingHTTPServer) -> None:
        def stop() -> None:
            server.shutdown()
            server.server_close()

        self._stops.insert(0, stop)

    def _wait_connected(self) -> None:
        deadline = time.monotonic() + CONNECT_WAIT
        while not (self.publisher.connected and self.consumer.connected) and time.monotonic() < deadline:
            time.sleep(0.05)

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
        }


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
