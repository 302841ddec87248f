"""RabbitMQ as the platform uses it: queue ``medical_data`` with a dead-letter exchange and a DLQ.

Topology (declared on start, durable)::

    medical_data        x-dead-letter-exchange=medical_data.dlx
    medical_data.dlx    direct exchange, binds medical_data.dlq with key "medical_data"
    medical_data.dlq    where rejected messages end up

:class:`Publisher` publishes from any thread over one connection with publisher confirms;
:class:`Consumer` consumes with a prefetch window and hands each delivery to a handler that
says ack, reject (into the DLQ) or requeue; while paused it holds its prefetched messages
unacknowledged, as a hung worker does. Both reconnect after a broker failure, logging one line
per change. Credentials come from the URL, ``RABBITMQ_USER`` / ``RABBITMQ_PASSWORD`` (or their
``_FILE`` variants), else RabbitMQ's loopback default guest/guest; they are never logged.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pika
import pika.exceptions
import requests
from pika.spec import BasicProperties

from medobs import UserError
from medobs.core.runtime import read_secret, safe_url

log = logging.getLogger("medobs.simulator.broker")

QUEUE = "medical_data"
DEAD_LETTER_EXCHANGE = "medical_data.dlx"
DEAD_LETTER_QUEUE = "medical_data.dlq"
DEFAULT_AMQP_URL = "amqp://127.0.0.1:5672/"
DEFAULT_MANAGEMENT_URL = "http://127.0.0.1:15672"
PREFETCH = 10
RECONNECT_SECONDS = 2.0
PUBLISH_TIMEOUT = 5.0
QUEUE_FIGURES = ("messages_ready", "messages_unacknowledged", "messages")


class BrokerUnavailable(Exception):
    """The broker did not take a message (down, reconnecting, or refused it)."""


class Verdict(enum.Enum):
    ACK = "ack"
    REJECT = "reject"  # basic.reject requeue=false: dead-lettered into the DLQ
    REQUEUE = "requeue"  # basic.nack requeue=true: back to the queue, redelivered later


@dataclass(frozen=True)
class BrokerSettings:
    """Where RabbitMQ is and who we are; ``describe()`` is the only form that reaches logs."""

    host: str
    port: int
    vhost: str
    user: str
    password: str
    management_url: str

    @classmethod
    def from_flags(cls, amqp_url: str, vhost: str, management_url: str) -> BrokerSettings:
        parts = urlsplit(amqp_url)
        if parts.scheme != "amqp" or not parts.hostname:
            raise UserError(f"--amqp-url {safe_url(amqp_url)!r} is not amqp://HOST:PORT/ (TLS is not supported)")
        if parts.path not in ("", "/"):
            raise UserError("--amqp-url must not name a vhost; pass it as --rabbitmq-vhost")
        try:
            port = parts.port or 5672
        except ValueError:
            raise UserError(f"--amqp-url {safe_url(amqp_url)!r} has an invalid port") from None
        user = parts.username or read_secret("RABBITMQ_USER") or "guest"
        password = parts.password or read_secret("RABBITMQ_PASSWORD") or "guest"
        return cls(parts.hostname, port, vhost, user, password, management_url.rstrip("/"))

    def describe(self) -> str:
        return f"amqp://{self.host}:{self.port} vhost {self.vhost}"

    def parameters(self) -> pika.ConnectionParameters:
        return pika.ConnectionParameters(
            self.host, self.port, self.vhost, pika.PlainCredentials(self.user, self.password),
            heartbeat=30, blocked_connection_timeout=30, socket_timeout=5, connection_attempts=1,
        )

    # -- the management API ------------------------------------------------------------------

    def _api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.management_url}/api/{path}", auth=(self.user, self.password),
                                timeout=5, **kwargs)

    def ensure_vhost(self) -> None:
        """Create the vhost (and our permissions on it) through the management API when missing."""
        name = quote(self.vhost, safe="")
        try:
            if self._api("GET", f"vhosts/{name}").status_code != 404:
                return
            self._api("PUT", f"vhosts/{name}").raise_for_status()
            self._api("PUT", f"permissions/{name}/{quote(self.user, safe='')}",
                      json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        except requests.RequestException as error:
            raise UserError(
                f"vhost {self.vhost!r} does not exist and the management API at {self.management_url} could not "
                f"create it ({type(error).__name__}): run `rabbitmqctl add_vhost {self.vhost}`"
            ) from None
        log.info("created RabbitMQ vhost %s", self.vhost)

    def queue_depths(self) -> dict[str, dict[str, int]]:
        """Ready / unacknowledged / total messages of the work queue and the DLQ, as the broker reports them."""
        depths = {}
        for name in (QUEUE, DEAD_LETTER_QUEUE):
            answer = self._api("GET", f"queues/{quote(self.vhost, safe='')}/{name}")
            answer.raise_for_status()
            data = answer.json()
            depths[name] = {key: int(data.get(key, 0)) for key in QUEUE_FIGURES}
        return depths


def describe_error(error: BaseException) -> str:
    """One line for a pika error: the innermost cause (pika nests causes in ``args``)."""
    while True:
        inner = getattr(error, "exception", None) or (error.args[0] if error.args else None)
        if not isinstance(inner, BaseException):
            return f"{type(error).__name__}: {error}".strip().rstrip(":")
        error = inner


def declare_topology(channel: Any) -> None:
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True)
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, routing_key=QUEUE)
    channel.queue_declare(QUEUE, durable=True, arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE})


def prepare(settings: BrokerSettings) -> None:
    """Check that the broker answers and declare the topology; UserError with what to do otherwise."""
    try:
        try:
            connection = pika.BlockingConnection(settings.parameters())
        except pika.exceptions.ProbableAccessDeniedError:
            settings.ensure_vhost()
            connection = pika.BlockingConnection(settings.parameters())
        try:
            declare_topology(connection.channel())
        finally:
            connection.close()
    except pika.exceptions.ChannelClosedByBroker as error:
        raise UserError(
            f"cannot declare {QUEUE} in {settings.describe()}: {error.reply_text}; delete the existing queue "
            f"(rabbitmqctl delete_queue -p {settings.vhost} {QUEUE}) or use another --rabbitmq-vhost"
        ) from None
    except pika.exceptions.ProbableAuthenticationError:
        raise UserError(
            f"RabbitMQ at {settings.describe()} refused user {settings.user!r}: set RABBITMQ_USER / RABBITMQ_PASSWORD"
        ) from None
    except pika.exceptions.AMQPError as error:
        raise UserError(
            f"cannot connect to RabbitMQ at {settings.describe()}: {describe_error(error)} "
            "(start RabbitMQ or pass --amqp-url)"
        ) from None


class _Link:
    """One connection in its own thread: reconnects with a pause, one log line per change."""

    def __init__(self, settings: BrokerSettings, role: str):
        self.settings, self.role = settings, role
        self.stopping = threading.Event()
        self.connected = False
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"amqp-{role}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self.stopping.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(self.settings.parameters())
                self.session(connection)
            except pika.exceptions.AMQPError as error:
                self._lost(describe_error(error))
            except Exception:  # a bug must not silently end the link: log it and start over
                log.exception("%s: unexpected error", self.role)
            finally:
                self.connected = False
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except pika.exceptions.AMQPError:
                        pass
            self.stopping.wait(RECONNECT_SECONDS)

    def up(self) -> None:
        self.connected = True
        if self._last_error is not None:
            log.info("%s: connected again to %s", self.role, self.settings.describe())
        self._last_error = None

    def _lost(self, error: str) -> None:
        if error != self._last_error:
            log.warning("%s: RabbitMQ at %s: %s", self.role, self.settings.describe(), error)
        self._last_error = error

    def session(self, connection: pika.BlockingConnection) -> None:
        raise NotImplementedError


@dataclass
class _Outgoing:
    body: bytes
    properties: BasicProperties
    done: threading.Event
    error: str | None = None


class Publisher(_Link):
    """Publishes to ``medical_data`` from any thread; :meth:`publish` returns once the broker confirmed."""

    def __init__(self, settings: BrokerSettings):
        super().__init__(settings, "publisher")
        self._outgoing: queue.Queue[_Outgoing] = queue.Queue()
        self.published = 0

    def publish(self, body: bytes, properties: BasicProperties) -> None:
        if not self.connected:
            raise BrokerUnavailable(f"not connected to RabbitMQ ({self._last_error or 'connecting'})")
        item = _Outgoing(body, properties, threading.Event())
        self._outgoing.put(item)
        if not item.done.wait(PUBLISH_TIMEOUT):
            raise BrokerUnavailable("no publisher confirm in time")
        if item.error:
            raise BrokerUnavailable(item.error)

    def session(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        channel.confirm_delivery()
        declare_topology(channel)
        self.up()
        try:
            while not self.stopping.is_set():
                try:
                    item = self._outgoing.get(timeout=0.2)
                except queue.Empty:
                    connection.process_data_events(0)  # heartbeats while idle
                    continue
                try:
                    channel.basic_publish("", QUEUE, item.body, item.properties, mandatory=True)
                    self.published += 1
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as error:
                    item.error = f"the broker refused the message ({type(error).__name__})"
                except pika.exceptions.AMQPError as error:
                    item.error = describe_error(error)
                    raise
                finally:
                    item.done.set()
        finally:
            self.connected = False
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        """Fail what is still queued, so that no caller sees a failure that is published later."""
        while True:
            try:
                item = self._outgoing.get_nowait()
            except queue.Empty:
                return
            item.error = "publisher stopped" if self.stopping.is_set() else "connection to RabbitMQ lost"
            item.done.set()


DeliveryHandler = Callable[[bytes], Verdict]


class Consumer(_Link):
    """Consumes ``medical_data`` with a prefetch window; ``handler(body)`` decides each delivery's
    fate. While ``paused()`` is true, deliveries stay unacknowledged."""

    def __init__(self, settings: BrokerSettings, handler: DeliveryHandler, paused: Callable[[], bool],
                 requeue_delay: float = 1.0):
        super().__init__(settings, "consumer")
        self.handler, self.paused, self.requeue_delay = handler, paused, requeue_delay
        self.counts = {verdict: 0 for verdict in Verdict}

    def session(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)
        deliveries: deque[tuple[Any, bytes]] = deque()
        channel.basic_consume(QUEUE, lambda channel, method, properties, body: deliveries.append((method, body)))
        self.up()
        while not self.stopping.is_set():
            connection.process_data_events(time_limit=0.2)
            while deliveries and not self.paused() and not self.stopping.is_set():
                method, body = deliveries.popleft()
                verdict = self.handler(body)
                if verdict is Verdict.ACK:
                    channel.basic_ack(method.delivery_tag)
                elif verdict is Verdict.REJECT:
                    channel.basic_reject(method.delivery_tag, requeue=False)
                else:
                    connection.sleep(self.requeue_delay)  # a failing worker backs off before retrying
                    channel.basic_nack(method.delivery_tag, requeue=True)
                self.counts[verdict] += 1
                connection.process_data_events(0)


def message_properties(message_id: str, app_id: str) -> BasicProperties:
    """Persistent JSON with the AMQP ``timestamp`` (seconds) the queue exporter reads ages from."""
    return BasicProperties(
        content_type="application/json", delivery_mode=2, timestamp=int(time.time()),
        message_id=message_id, type="study.uploaded", app_id=app_id,
    )
