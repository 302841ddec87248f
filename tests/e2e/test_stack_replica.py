"""The stack's PostgreSQL streaming replica seen through Prometheus on the running stack: the
Database board's replication panels show it, PostgresReplicaNotReplaying stays silent while it
streams, and a replica whose replay is paused shows a growing lag that PostgresReplicationLagHigh
catches."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psycopg
import pytest

from alerts import database
from alerts.thresholds import Thresholds
from dashboards import check, variables
from dashboards.model import load, queries
from medobs.core.catalog import postgres
from tests.conftest import BUILT_DASHBOARDS
from tests.simulator_support import ADMIN_DSN
from tests.stack_support import SCRAPE_INTERVAL, StackUnderTest, wait_until

RATE_INTERVAL = f"{4 * SCRAPE_INTERVAL}s"


def panel_results(stack: StackUnderTest, title: str) -> list[dict]:
    """What the Database board's panel shows now: its queries with the variables set as Grafana's
    "All" would, asked of the stack's Prometheus."""
    (board,) = load([BUILT_DASHBOARDS / "database.json"])
    window = check.window_of("5m", RATE_INTERVAL)
    values, problems = check.resolve_variables(board, check.Prometheus(stack.prometheus, 10), window)
    assert not problems, problems
    (panel,) = [p for p in board.panels() if p["title"] == title]
    return [row for q in queries(panel) for row in stack.query(variables.substitute(q["expr"], values))]


def alert_expr(name: str, thresholds: Thresholds = Thresholds()) -> str:
    (alert,) = [a for a in database.alerts(thresholds) if a.name == name]
    return alert.expr


def test_the_database_boards_replication_panels_show_the_replica(running_stack):
    replica_exporter = running_stack.stack.address("postgres-replica-exporter")
    name = running_stack.replica.application_name

    def lag_of_our_replica():
        time_lag = {r["metric"]["instance"]: float(r["value"][1])
                    for r in panel_results(running_stack, "Replication lag (time)")}
        bytes_lag = {r["metric"]["application_name"]: float(r["value"][1])
                     for r in panel_results(running_stack, "Replication lag (bytes)")}
        return replica_exporter in time_lag and name in bytes_lag and (time_lag, bytes_lag)

    time_lag, bytes_lag = wait_until(lag_of_our_replica, timeout=3 * SCRAPE_INTERVAL,
                                     what="the replica in both replication panels")
    # a healthy replica replays what it receives at once; the primary's own row is 0 by definition
    assert time_lag[running_stack.stack.address("postgresql")] == 0
    assert 0 <= time_lag[replica_exporter] < 60 and bytes_lag[name] >= 0


def test_replica_not_replaying_stays_silent_while_the_replica_streams(running_stack):
    streaming = running_stack.query(
        f'{postgres.REPLICATION_SLOT_LAG_BYTES.name}{{job="postgresql", application_name='
        f'"{running_stack.replica.application_name}", state="streaming"}}')
    assert len(streaming) == 1
    assert running_stack.query(alert_expr("PostgresReplicaNotReplaying")) == []
    assert running_stack.query('ALERTS{alertname="PostgresReplicaNotReplaying"}') == []
    # the same expression, expecting more replicas than any primary here has, names the primary
    expecting_more = Thresholds(database=dataclasses.replace(Thresholds().database, expected_replicas=1000))
    (primary,) = running_stack.query(alert_expr("PostgresReplicaNotReplaying", expecting_more))
    assert primary["metric"]["instance"] == running_stack.stack.address("postgresql")


@pytest.fixture
def paused_replay(healthy_stack) -> Iterator[StackUnderTest]:
    """The stack's replica with its replay paused (it keeps receiving WAL); resumed afterwards, and
    caught up with the primary before the next test."""
    with psycopg.connect(healthy_stack.replica.dsn, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            yield healthy_stack
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
            with psycopg.connect(ADMIN_DSN) as primary:
                written = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            wait_until(lambda: standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [written]).fetchone()[0],
                       timeout=30, what="the replica catching up after its replay resumed")


def test_a_paused_replay_shows_as_growing_lag_that_the_lag_alert_catches(paused_replay):
    """The simulator keeps writing on the primary, so the paused replica falls behind in time and
    bytes. PostgresReplicationLagHigh's own expression, with its 60 s threshold lowered to two
    scrape intervals, names the replica (its `for` is the promtool unit tests' business); waiting
    for the real 60 s and 5 minutes would add six minutes to every run."""
    stack = paused_replay
    replica_exporter = stack.stack.address("postgres-replica-exporter")
    time_lag = f'{postgres.REPLICATION_LAG.name}{{job="postgresql", instance="{replica_exporter}"}}'
    bytes_lag = (f'{postgres.REPLICATION_SLOT_LAG_BYTES.name}{{job="postgresql", '
                 f'application_name="{stack.replica.application_name}"}}')
    threshold = 2 * SCRAPE_INTERVAL
    first = wait_until(lambda: (stack.value(time_lag) or 0) > threshold and stack.value(time_lag),
                       timeout=threshold + 4 * SCRAPE_INTERVAL, what=f"the replica's lag passing {threshold}s")
    assert stack.value(bytes_lag) > 0  # WAL the primary has written and the replica has not replayed
    wait_until(lambda: stack.value(time_lag) >= first + SCRAPE_INTERVAL, timeout=3 * SCRAPE_INTERVAL,
               what="the lag still growing")

    lowered = Thresholds(database=dataclasses.replace(Thresholds().database, replication_lag_seconds=threshold))
    (firing,) = stack.query(alert_expr("PostgresReplicationLagHigh", lowered))
    assert firing["metric"]["instance"] == replica_exporter
    assert stack.query(alert_expr("PostgresReplicationLagHigh")) == []  # not 60 s behind yet
    # a paused replica still streams (it receives WAL): the lag alert is the one that catches it
    assert stack.query(alert_expr("PostgresReplicaNotReplaying")) == []
