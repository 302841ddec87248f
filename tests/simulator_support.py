"""What the simulator's tests share: a private RabbitMQ vhost, a private PostgreSQL database,
a running simulated platform on ephemeral ports, and ways to read what it exposes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families

from medobs.simulator.broker import (
    DEFAULT_AMQP_URL,
    DEFAULT_MANAGEMENT_URL,
    BrokerSettings,
)
from medobs.simulator.database import Database
from medobs.simulator.platform import Config, Platform
from medobs.simulator.scenarios import Knobs
from tests.conftest import free_port

MANAGEMENT = DEFAULT_MANAGEMENT_URL
GUEST = ("guest", "guest")
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextmanager
def private_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of our own (guest may use it), deleted afterwards with its queues."""
    name = unique("medobs-test")
    path = quote(name, safe="")
    requests.put(f"{MANAGEMENT}/api/vhosts/{path}", auth=GUEST, timeout=10).raise_for_status()
    requests.put(f"{MANAGEMENT}/api/permissions/{path}/guest", auth=GUEST, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    try:
        yield name
    finally:
        requests.delete(f"{MANAGEMENT}/api/vhosts/{path}", auth=GUEST, timeout=30)


@contextmanager
def private_database() -> Iterator[str]:
    """The DSN of a database that does not exist yet (the simulator creates it), dropped afterwards."""
    name = unique("medobs_test").replace("-", "_")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def broker_settings(vhost: str) -> BrokerSettings:
    return BrokerSettings.from_flags(DEFAULT_AMQP_URL, vhost, MANAGEMENT)


@contextmanager
def running_platform(knobs: Knobs | None = None, seed: int = 7, **overrides: Any) -> Iterator[Platform]:
    """A started simulator on ephemeral loopback ports, in its own vhost and database (no traffic
    unless ``knobs`` say so)."""
    with private_vhost() as vhost, private_database() as dsn:
        config = Config(
            gateway_listen=("127.0.0.1", free_port()),
            tfserving_listen=("127.0.0.1", free_port()),
            control_listen=("127.0.0.1", free_port()),
            kubelet_listen=("127.0.0.1", free_port()),
            kube_state_metrics_listen=("127.0.0.1", free_port()),
            cert_manager_listen=("127.0.0.1", free_port()),
            broker=broker_settings(vhost),
            database=Database(dsn),
            seed=seed,
            scenario="test",
            knobs=knobs or Knobs(request_rate=0),
            **overrides,
        )
        platform = Platform(config)
        platform.start()
        try:
            yield platform
        finally:
            platform.stop()


def queue_depths(vhost: str) -> dict[str, int]:
    """``{queue: messages}`` as the management API reports them (its figures refresh every few seconds)."""
    answer = requests.get(f"{MANAGEMENT}/api/queues/{quote(vhost, safe='')}", auth=GUEST, timeout=10)
    answer.raise_for_status()
    return {q["name"]: q.get("messages", 0) for q in answer.json()}


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.5) -> Any:
    """Poll until ``condition()`` is truthy and return it; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s (last value {value!r})"
            return value
        time.sleep(interval)


def scrape(url: str) -> dict[str, Any]:
    """``{family name: family}`` of a Prometheus text exposition."""
    text = requests.get(url, timeout=10).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_sum(families: dict[str, Any], sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels``."""
    return sum(s.value for family in families.values() for s in family.samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))
