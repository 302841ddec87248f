"""The real RabbitMQ on this machine, for the queue exporter's tests: a private vhost each, the
exporter served on an ephemeral port, and its exposition read back as Prometheus would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import pika
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporters.queue import cli
from medobs.cli import parser
from medobs.core import runtime as base

MANAGEMENT = "http://127.0.0.1:15672"
PLUGIN = "http://127.0.0.1:15692"
AUTH = ("guest", "guest")
T = TypeVar("T")


class Broker:
    """One private vhost on the shared broker."""

    def __init__(self, vhost: str):
        self.vhost = vhost
        self.quoted = quote(vhost, safe="")

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, MANAGEMENT + path, auth=AUTH, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", virtual_host=self.vhost))

    def queues(self) -> dict[str, dict]:
        """The management API's view of the vhost's queues, with statistics."""
        return {q["name"]: q for q in self.api("GET", f"/api/queues/{self.quoted}").json()}

    def policy(self, name: str, pattern: str, definition: dict, priority: int = 0) -> None:
        self.api("PUT", f"/api/policies/{self.quoted}/{name}", json={
            "pattern": pattern, "definition": definition, "apply-to": "queues", "priority": priority,
        })


@contextmanager
def private_vhost() -> Iterator[Broker]:
    broker = Broker(f"medobs-test-{uuid.uuid4().hex[:10]}")
    broker.api("PUT", f"/api/vhosts/{broker.quoted}")
    try:
        broker.api("PUT", f"/api/permissions/{broker.quoted}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
        yield broker
    finally:
        requests.delete(f"{MANAGEMENT}/api/vhosts/{broker.quoted}", auth=AUTH, timeout=30)


@contextmanager
def monitoring_user(broker: Broker, password: str) -> Iterator[str]:
    """A user of its own with the ``monitoring`` tag, allowed to read ``broker``'s vhost; deleted afterwards."""
    name = f"medobs-monitor-{uuid.uuid4().hex[:10]}"
    broker.api("PUT", f"/api/users/{name}", json={"password": password, "tags": "monitoring"})
    try:
        broker.api("PUT", f"/api/permissions/{broker.quoted}/{name}", json={"configure": "", "write": "", "read": ".*"})
        yield name
    finally:
        requests.delete(f"{MANAGEMENT}/api/users/{name}", auth=AUTH, timeout=30)


@contextmanager
def one_queue(name: str) -> Iterator[tuple[Broker, pika.BlockingConnection, Any]]:
    """A private vhost holding queue ``name``: (broker, connection, channel)."""
    with private_vhost() as broker:
        connection = broker.connect()
        channel = connection.channel()
        channel.queue_declare(name)
        try:
            yield broker, connection, channel
        finally:
            if connection.is_open:
                connection.close()


def wait_for(produce: Callable[[], T], accept: Callable[[T], bool], timeout: float = 30, what: str = "") -> T:
    """``produce()`` until ``accept`` takes it (the broker updates its statistics every 5 s)."""
    give_up = time.monotonic() + timeout
    while True:
        value = produce()
        if accept(value):
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what or produce}: last {value!r}")
        time.sleep(0.3)


@contextmanager
def serving(*flags: str) -> Iterator[tuple[base.Exporter, str]]:
    """The exporter built by the command line from ``flags``, served on a free port: (exporter, /metrics URL)."""
    args = parser().parse_args(["exporter", "queue", *flags])
    exporter = cli.build(args)
    server = base.start_server(exporter, ("127.0.0.1", 0))
    try:
        yield exporter, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


Samples = dict[tuple[str, frozenset], float]


def scrape(url: str, timeout: float = 15, headers: dict | None = None) -> Samples:
    """The exposition at ``url``, parsed: {(sample name, frozenset of label items): value}."""
    text = requests.get(url, timeout=timeout, headers=headers or {}).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset, float]:
    """Every series of one sample name, keyed by its labels."""
    return {labels: v for (sample_name, labels), v in samples.items() if sample_name == name}
