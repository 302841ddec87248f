"""A connection pool with HikariCP's behaviour and metrics, over real PostgreSQL connections.

Like HikariCP it opens connections on demand up to ``maximum_pool_size``, keeps
``minimum_idle`` open (a housekeeper tops them up and retires idle extras after
``idle_timeout``), makes callers wait up to ``connection_timeout`` for a free connection and
then fails them (SQLTransientConnectionException), and reports through micrometer::

    hikaricp_connections{application="study-service",pool="HikariPool-1"} 10.0
    hikaricp_connections_active{...} 10.0
    hikaricp_connections_idle{...} 0.0
    hikaricp_connections_pending{...} 3.0
    hikaricp_connections_max{...} 10.0
    hikaricp_connections_min{...} 2.0
    hikaricp_connections_timeout_total{...} 7.0
    hikaricp_connections_acquire_seconds_count{...} 312.0
    hikaricp_connections_usage_seconds{...,quantile="0.95"} 0.004
    hikaricp_connections_usage_seconds_count{...} 305.0
    hikaricp_connections_creation_seconds_count{...} 10.0
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from medobs.core.catalog import gateway
from medobs.simulator.micrometer import TimerFamily

log = logging.getLogger("medobs.simulator.hikari")

HOUSEKEEPING_SECONDS = 5.0


class PoolTimeout(Exception):
    """No connection became free within ``connection_timeout`` (HikariCP's SQLTransientConnectionException)."""


class DatabaseUnavailable(Exception):
    """A new connection could not be opened (PostgreSQL down, refused or misconfigured)."""


class HikariPool:
    """Pooled psycopg connections for one service (``application``), HikariCP-style."""

    def __init__(
        self,
        application: str,
        connect: Callable[[], psycopg.Connection],
        *,
        name: str = "HikariPool-1",
        maximum_pool_size: int = 10,
        minimum_idle: int = 2,
        connection_timeout: float = 2.0,
        idle_timeout: float = 60.0,
    ):
        self.application, self.name = application, name
        self.maximum_pool_size, self.minimum_idle = maximum_pool_size, minimum_idle
        self.connection_timeout, self.idle_timeout = connection_timeout, idle_timeout
        self._connect = connect
        self._cond = threading.Condition()
        self._idle: list[tuple[psycopg.Connection, float]] = []  # (connection, idle since)
        self._total = 0  # open or being opened
        self._pending = 0
        self._timeouts = 0
        self._closed = False
        self._last_error: str | None = None
        self.acquire = TimerFamily(gateway.HIKARI_ACQUIRE, gateway.HIKARI_ACQUIRE_MAX)
        self.usage = TimerFamily(gateway.HIKARI_USAGE, gateway.HIKARI_USAGE_MAX, percentiles=gateway.HIKARI_USAGE_PERCENTILES)
        self.creation = TimerFamily(gateway.HIKARI_CREATION, gateway.HIKARI_CREATION_MAX)
        self._housekeeper = threading.Thread(target=self._housekeep, name=f"hikari-{application}", daemon=True)
        self._housekeeper.start()

    @property
    def _tags(self) -> dict[str, str]:
        return {"application": self.application, "pool": self.name}

    # -- borrowing -------------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for one unit of work: committed on success, rolled back on error."""
        conn = self._borrow()
        borrowed = time.monotonic()
        broken = False
        try:
            with conn.transaction():
                yield conn
        except psycopg.OperationalError:
            broken = True
            raise
        finally:
            self.usage.record(time.monotonic() - borrowed, **self._tags)
            self._give_back(conn, broken or conn.closed or conn.broken)

    def _borrow(self) -> psycopg.Connection:
        started = time.monotonic()
        deadline = started + self.connection_timeout
        with self._cond:
            self._pending += 1
            try:
                while True:
                    if self._closed:
                        raise DatabaseUnavailable(f"pool {self.application} is closed")
                    if self._idle:
                        conn, _ = self._idle.pop()
                        break
                    if self._total < self.maximum_pool_size:
                        self._total += 1
                        conn = None
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._timeouts += 1
                        raise PoolTimeout(
                            f"{self.name} - Connection is not available, request timed out after "
                            f"{self.connection_timeout * 1000:.0f}ms."
                        )
                    self._cond.wait(remaining)
            finally:
                self._pending -= 1
        if conn is None:
            conn = self._open()
        self.acquire.record(time.monotonic() - started, **self._tags)
        return conn

    def _open(self) -> psycopg.Connection:
        """A new physical connection for a slot already counted in ``_total``."""
        started = time.monotonic()
        try:
            conn = self._connect()
        except psycopg.Error as error:
            with self._cond:
                self._total -= 1
                self._cond.notify()
            self._note_error(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {self._last_error}") from None
        self.creation.record(time.monotonic() - started, **self._tags)
        self._note_error(None)
        return conn

    def _give_back(self, conn: psycopg.Connection, broken: bool) -> None:
        with self._cond:
            if broken or self._closed:
                self._total -= 1
            else:
                self._idle.append((conn, time.monotonic()))
            self._cond.notify()
        if broken or self._closed:
            conn.close()

    def _note_error(self, error: str | None) -> None:
        if error != self._last_error:
            if error:
                log.warning("%s pool: %s", self.application, error)
            elif self._last_error:
                log.info("%s pool: connected again", self.application)
        self._last_error = error

    # -- housekeeping ----------------------------------------------------------------------

    def _housekeep(self) -> None:
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._closed, HOUSEKEEPING_SECONDS):
                    return
            self.housekeep()

    def housekeep(self) -> None:
        """Retire idle connections above ``minimum_idle`` unused for ``idle_timeout``; top up to it."""
        now = time.monotonic()
        retired: list[psycopg.Connection] = []
        with self._cond:
            keep = [(c, since) for c, since in self._idle if not c.closed]
            self._total -= len(self._idle) - len(keep)
            while len(keep) > self.minimum_idle and now - keep[0][1] >= self.idle_timeout:
                retired.append(keep.pop(0)[0])
                self._total -= 1
            self._idle = keep
            missing = min(self.minimum_idle - len(self._idle), self.maximum_pool_size - self._total)
            self._total += max(0, missing)
        for conn in retired:
            conn.close()
        for _ in range(max(0, missing)):
            try:
                conn = self._open()
            except DatabaseUnavailable:
                return
            self._give_back(conn, broken=False)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._total -= len(idle)
            self._cond.notify_all()
        for conn, _ in idle:
            conn.close()
        self._housekeeper.join(timeout=HOUSEKEEPING_SECONDS)

    # -- metrics ---------------------------------------------------------------------------

    def families(self) -> list[Metric]:
        labels = [self.application, self.name]
        with self._cond:
            idle, total = len(self._idle), self._total
            values = {
                gateway.HIKARI_CONNECTIONS: total,
                gateway.HIKARI_ACTIVE: total - idle,
                gateway.HIKARI_IDLE: idle,
                gateway.HIKARI_PENDING: self._pending,
                gateway.HIKARI_MAX: self.maximum_pool_size,
                gateway.HIKARI_MIN: self.minimum_idle,
            }
            timeouts = self._timeouts
        families: list[Metric] = []
        for entry, value in values.items():
            family = GaugeMetricFamily(entry.name, entry.help, labels=list(entry.labels))
            family.add_metric(labels, value)
            families.append(family)
        counter = CounterMetricFamily(gateway.HIKARI_TIMEOUTS.name, gateway.HIKARI_TIMEOUTS.help,
                                      labels=list(gateway.HIKARI_TIMEOUTS.labels))
        counter.add_metric(labels, timeouts)
        families.append(counter)
        for timer in (self.acquire, self.usage, self.creation):
            families.extend(timer.families())
        return families
