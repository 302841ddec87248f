"""PostgreSQL and HikariCP alerts: replication lag, a replica that stopped replaying,
connections near max_connections, threads waiting for a pooled connection, deadlocks,
transaction-ID wraparound risk, PostgreSQL down.

The seed's database RPO on failover is 5 minutes: replication lag is what puts it at risk.
"""

from __future__ import annotations

from alerts.model import Alert, job, percent, promql, sel
from alerts.thresholds import Thresholds
from medobs.core.catalog import gateway, postgres

SERVICE = "postgresql"
JOB = job("postgresql")
GATEWAY_JOB = job("api-gateway")
#: Transactions until wraparound: age(datfrozenxid) can never pass 2^31.
XID_WRAPAROUND = 2**31
#: One PostgreSQL server (postgres_exporter 0.11 labels its samples with ``server``).
SERVER = "job, instance, server"


def alerts(t: Thresholds) -> list[Alert]:
    d = t.database
    is_replica = sel(postgres.IS_REPLICA, job=JOB)
    return [
        Alert(
            name="PostgresDown",
            expr=promql(f"""
                {sel(postgres.UP, job=JOB)} == 0
                unless on (job, instance)
                max_over_time({is_replica}[{d.replica_memory}]) == 1
            """),
            for_=d.down_for,
            severity="critical",
            service=SERVICE,
            dashboard="database",
            summary="The PostgreSQL primary does not answer.",
            description=(
                "postgres_exporter {{ $labels.instance }} has not been able to query its "
                "PostgreSQL server for @for: the platform cannot read or write metadata. "
                "(A server seen as a replica in the last @memory is left to "
                "PostgresReplicaNotReplaying.)"
            ),
            values={"memory": d.replica_memory},
        ),
        Alert(
            name="PostgresReplicationLagHigh",
            expr=promql(f"""
                max by ({SERVER}) ({sel(postgres.REPLICATION_LAG, job=JOB)}) > {d.replication_lag_seconds:g}
                and on ()
                max({sel(postgres.REPLICATION_SLOT_LAG_BYTES, job=JOB)}) > 0
            """),
            for_=d.replication_lag_for,
            severity="warning",
            service=SERVICE,
            dashboard="database",
            summary="The PostgreSQL replica replays WAL far behind the primary.",
            description=(
                "Replica {{ $labels.server }} ({{ $labels.instance }}) last replayed a "
                "transaction {{ $value | humanizeDuration }} ago while the primary has WAL it "
                "has not replayed (more than @threshold s, for @for): a failover now would lose "
                "those transactions; the RPO on failover is 5 minutes."
            ),
            values={"threshold": f"{d.replication_lag_seconds:g}"},
        ),
        Alert(
            name="PostgresReplicaNotReplaying",
            expr=promql(f"""
                (
                  count by ({SERVER}) ({sel(postgres.REPLICATION_SLOT_LAG_BYTES, job=JOB, state="streaming")})
                  or on ({SERVER})
                  {is_replica} == 0
                ) < {d.expected_replicas}
            """),
            for_=d.replica_for,
            severity="warning",
            service=SERVICE,
            dashboard="database",
            summary="The PostgreSQL primary has fewer streaming replicas than expected.",
            description=(
                "Primary {{ $labels.server }} ({{ $labels.instance }}) has had {{ $value }} "
                "streaming replicas (expected @expected) for @for: the replica is down, "
                "disconnected or stopped replaying, and a primary failure now means restoring "
                "from the last backup."
            ),
            values={"expected": d.expected_replicas},
        ),
        Alert(
            name="PostgresConnectionsNearMax",
            expr=promql(f"""
                sum by ({SERVER}) ({sel(postgres.NUMBACKENDS, job=JOB)})
                  / on ({SERVER})
                  {sel(postgres.MAX_CONNECTIONS, job=JOB)}
                  > {d.connections_ratio}
            """),
            for_=d.connections_for,
            severity="warning",
            service=SERVICE,
            dashboard="database",
            summary="PostgreSQL is close to max_connections.",
            description=(
                "{{ $labels.server }} ({{ $labels.instance }}) has used "
                "{{ $value | humanizePercentage }} of max_connections (more than @ratio) for "
                "@for: new connections will soon be refused."
            ),
            values={"ratio": percent(d.connections_ratio)},
        ),
        Alert(
            name="HikariPoolThreadsWaiting",
            expr=f"{sel(gateway.HIKARI_PENDING, job=GATEWAY_JOB)} > {d.hikari_pending}",
            for_=d.hikari_for,
            severity="warning",
            service=SERVICE,
            dashboard="database",
            summary="Application threads keep waiting for a database connection from HikariCP.",
            description=(
                "Pool {{ $labels.pool }} of {{ $labels.application }} on {{ $labels.instance }} "
                "has had {{ $value }} threads waiting for a connection for @for: the pool is "
                "exhausted (slow queries, leaked connections, or a pool too small)."
            ),
        ),
        Alert(
            name="PostgresDeadlocks",
            expr=f"increase({sel(postgres.DEADLOCKS, job=JOB)}[{d.deadlocks_window}]) >= {d.deadlocks}",
            severity="warning",
            service=SERVICE,
            dashboard="database",
            summary="Transactions deadlock in PostgreSQL.",
            description=(
                "Database {{ $labels.datname }} on {{ $labels.server }} detected "
                "{{ $value | humanize }} deadlocks in the last @window (@threshold or more): "
                "two code paths lock the same rows in different orders."
            ),
            values={"window": d.deadlocks_window, "threshold": d.deadlocks},
        ),
        Alert(
            name="PostgresXidWraparoundRisk",
            expr=f"{sel(postgres.XID_AGE, job=JOB)} / {XID_WRAPAROUND} > {d.xid_age_ratio}",
            for_=d.xid_for,
            severity="warning",
            service=SERVICE,
            dashboard="database",
            summary="A database is heading for transaction-ID wraparound.",
            description=(
                "Database {{ $labels.datname }} on {{ $labels.instance }} has used "
                "{{ $value | humanizePercentage }} of the transaction IDs before wraparound "
                "(more than @ratio) for @for: autovacuum is not freezing it; at 100% PostgreSQL "
                "stops accepting writes."
            ),
            values={"ratio": percent(d.xid_age_ratio)},
        ),
    ]
