"""The HikariCP-style pool over real PostgreSQL connections: sizes, waiting, timeouts, metrics."""

import threading
import time

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from medobs.core.catalog import gateway
from medobs.simulator.database import Database
from medobs.simulator.hikari import DatabaseUnavailable, HikariPool, PoolTimeout
from medobs.simulator.micrometer import exposition
from tests.simulator_support import ADMIN_DSN, private_database, unique, wait_for


@pytest.fixture(scope="module")
def database():
    with private_database() as dsn:
        db = Database(dsn)
        db.prepare()
        yield db


def values(pool):
    text = exposition(pool.families())[0].decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def backends(application):
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                             (application,)).fetchone()[0]


def test_pool_keeps_minimum_idle_real_connections(database):
    application = unique("svc")
    pool = HikariPool(application, database.connector(application), maximum_pool_size=4, minimum_idle=2)
    try:
        pool.housekeep()
        found = values(pool)
        assert found[gateway.HIKARI_CONNECTIONS.name] == 2 and found[gateway.HIKARI_IDLE.name] == 2
        assert found[gateway.HIKARI_MAX.name] == 4 and found[gateway.HIKARI_MIN.name] == 2
        assert backends(application) == 2  # the server sees exactly the pool's connections
    finally:
        pool.close()
    wait_for(lambda: backends(application) == 0, timeout=5, interval=0.05)


def test_saturated_pool_makes_callers_wait_then_times_them_out(database):
    application = unique("svc")
    pool = HikariPool(application, database.connector(application), maximum_pool_size=2, minimum_idle=0,
                      connection_timeout=0.5)
    holding = threading.Barrier(3)
    release = threading.Event()

    def hold():
        with pool.connection() as conn:
            conn.execute("SELECT 1")
            holding.wait()
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    try:
        for thread in holders:
            thread.start()
        holding.wait()
        waiter_result = []
        waiter = threading.Thread(target=lambda: waiter_result.append(_try_borrow(pool)))
        waiter.start()
        time.sleep(0.2)
        during = values(pool)
        assert during[gateway.HIKARI_ACTIVE.name] == 2 and during[gateway.HIKARI_PENDING.name] == 1
        waiter.join()
        assert waiter_result == ["timeout"]
        after = values(pool)
        assert after[gateway.HIKARI_TIMEOUTS.name] == 1
        assert after[gateway.HIKARI_PENDING.name] == 0
        assert backends(application) == 2
        release.set()
        for thread in holders:
            thread.join()
        assert _try_borrow(pool) == "ok"  # a returned connection is reused, not a new one
        found = values(pool)
        assert found[gateway.HIKARI_CONNECTIONS.name] == 2 and found[gateway.HIKARI_IDLE.name] == 2
        assert found[gateway.HIKARI_CREATION.count] == 2
        assert found[gateway.HIKARI_ACQUIRE.count] == 3 and found[gateway.HIKARI_USAGE.count] == 3
        assert found[gateway.HIKARI_USAGE_MAX.name] >= 0.2
    finally:
        release.set()
        pool.close()


def _try_borrow(pool):
    try:
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        return "ok"
    except PoolTimeout:
        return "timeout"


def test_idle_connections_above_minimum_are_retired(database):
    application = unique("svc")
    pool = HikariPool(application, database.connector(application), maximum_pool_size=3, minimum_idle=1,
                      idle_timeout=0.1)
    try:
        barrier = threading.Barrier(3)

        def use():
            with pool.connection():
                barrier.wait()

        threads = [threading.Thread(target=use) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert values(pool)[gateway.HIKARI_CONNECTIONS.name] == 3
        time.sleep(0.15)
        pool.housekeep()
        assert values(pool)[gateway.HIKARI_CONNECTIONS.name] == 1
        assert backends(application) == 1
    finally:
        pool.close()


def test_a_failed_transaction_is_rolled_back_and_the_connection_kept(database):
    application = unique("svc")
    pool = HikariPool(application, database.connector(application), maximum_pool_size=1, minimum_idle=0)
    try:
        with pytest.raises(psycopg.errors.UndefinedTable):
            with pool.connection() as conn:
                conn.execute("SELECT * FROM no_such_table")
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert values(pool)[gateway.HIKARI_CONNECTIONS.name] == 1
    finally:
        pool.close()


def test_unreachable_database_fails_borrowers_without_leaking_slots():
    db = Database("postgresql://postgres@127.0.0.1:1/nothing")
    pool = HikariPool("svc", db.connector("svc"), maximum_pool_size=2, minimum_idle=0)
    try:
        for _ in range(3):
            with pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL"):
                with pool.connection():
                    pass
        assert values(pool)[gateway.HIKARI_CONNECTIONS.name] == 0
    finally:
        pool.close()
