"""Database: the HikariCP pool as the gateway sees it, PostgreSQL (queries, transactions,
replication) as postgres_exporter sees it, and Redis (memory, hit ratio, persistence)."""

from __future__ import annotations

from typing import Any

from dashboards.panels import (
    BYTES,
    COUNT,
    JOB_INSTANCE,
    OPERATIONS_PER_SECOND,
    RATIO,
    SECONDS,
    Row,
    board,
    increase,
    jobs_matcher,
    mean,
    rate,
    stat,
    target,
    timeseries,
)
from medobs.core.catalog import gateway, platform, postgres, redis

JOBS = ("api-gateway", "postgresql", "redis")


def _per_pool(entry: Any, legend: str) -> Any:
    return target(f"sum by (pool) ({JOB_INSTANCE(entry.name)})", f"{{{{pool}}}} {legend}")


def _pool() -> Row:
    acquire = gateway.HIKARI_ACQUIRE
    return Row("Connection pool (HikariCP)", [
        timeseries(
            "Pool connections", "Connections in use, idle, threads waiting for one, and the pool's maximum.",
            COUNT,
            _per_pool(gateway.HIKARI_ACTIVE, "active"),
            _per_pool(gateway.HIKARI_IDLE, "idle"),
            _per_pool(gateway.HIKARI_PENDING, "pending"),
            _per_pool(gateway.HIKARI_MAX, "max"),
            width=12,
        ),
        timeseries(
            "Connection acquire time", "Mean time a thread waited to get a connection from the pool.",
            SECONDS,
            target(mean(JOB_INSTANCE(acquire.sum), JOB_INSTANCE(acquire.count), "pool"), "{{pool}}"),
            width=12,
        ),
    ])


def _usage_quantile(quantile: float) -> Any:
    """A micrometer percentile of the pool's usage timer (a summary quantile: max over instances)."""
    matcher = f'quantile="{quantile!r}"'
    return target(
        f"max by (pool) ({JOB_INSTANCE(gateway.HIKARI_USAGE.name, matcher)})",
        f"{{{{pool}}}} p{round(quantile * 100)}",
    )


def _queries() -> Row:
    usage = gateway.HIKARI_USAGE
    by_database = "sum by (datname)"
    # the postgresql job has a target per server (primary, replica): their figures are not added up
    per_server_database = "sum by (instance, datname)"
    hits = f"{by_database} ({rate(JOB_INSTANCE(postgres.BLKS_HIT.name))})"
    return Row("Queries", [
        timeseries(
            "Query time",
            "p95 / p99 of how long the service holds a connection per use (HikariCP usage timer; needs "
            "micrometer percentiles 0.95,0.99 for hikaricp.connections.usage), and the mean.",
            SECONDS,
            *[_usage_quantile(quantile) for quantile in gateway.HIKARI_USAGE_PERCENTILES],
            target(mean(JOB_INSTANCE(usage.sum), JOB_INSTANCE(usage.count), "pool"), "{{pool}} mean"),
        ),
        timeseries(
            "Transaction rate", "Transactions committed and rolled back per second, by server and database "
            "(the primary's; a replica's are its read-only ones).",
            OPERATIONS_PER_SECOND,
            target(f"{per_server_database} ({rate(JOB_INSTANCE(postgres.XACT_COMMIT.name))})",
                   "{{instance}} {{datname}} commit"),
            target(f"{per_server_database} ({rate(JOB_INSTANCE(postgres.XACT_ROLLBACK.name))})",
                   "{{instance}} {{datname}} rollback"),
        ),
        timeseries(
            "Connections by state", "Connections to each server (primary and replica) by state (active, idle, "
            "idle in transaction ...) against its max_connections.",
            COUNT,
            target(f"sum by (instance, state) ({JOB_INSTANCE(postgres.ACTIVITY_COUNT.name)})", "{{instance}} {{state}}"),
            target(f"max by (instance) ({JOB_INSTANCE(postgres.MAX_CONNECTIONS.name)})", "{{instance}} max_connections"),
        ),
        timeseries(
            "Deadlocks", "Deadlocks PostgreSQL detected, by database.",
            COUNT, target(f"{by_database} ({increase(JOB_INSTANCE(postgres.DEADLOCKS.name))})", "{{datname}}"),
        ),
        timeseries(
            "Cache hit ratio", "Share of block reads served from shared buffers rather than disk, by database.",
            RATIO,
            target(f"{hits} / ({hits} + {by_database} ({rate(JOB_INSTANCE(postgres.BLKS_READ.name))}))",
                   "{{datname}}"),
            maximum=1,
        ),
    ])


def _replication() -> Row:
    return Row("Replication", [
        timeseries(
            "Replication lag (time)", "Seconds since the replica replayed the last transaction (0 on the primary).",
            SECONDS, target(f"max by (instance) ({JOB_INSTANCE(postgres.REPLICATION_LAG.name)})", "{{instance}}"),
            width=12,
        ),
        timeseries(
            "Replication lag (bytes)", "WAL bytes between the primary and each replica's replay position.",
            BYTES,
            target(
                f"max by (application_name) ({JOB_INSTANCE(postgres.REPLICATION_SLOT_LAG_BYTES.name)})",
                "{{application_name}}",
            ),
            width=12,
        ),
    ])


def _redis() -> Row:
    hits = f"sum({rate(JOB_INSTANCE(redis.KEYSPACE_HITS.name))})"
    return Row("Redis", [
        timeseries(
            "Redis memory", "Memory Redis allocated, and maxmemory (0 when unlimited).",
            BYTES,
            target(f"max by (instance) ({JOB_INSTANCE(redis.MEMORY_USED.name)})", "{{instance}} used"),
            target(f"max by (instance) ({JOB_INSTANCE(redis.MEMORY_MAX.name)})", "{{instance}} maxmemory"),
            width=6,
        ),
        timeseries(
            "Redis hit ratio", "Share of key lookups that found their key.",
            RATIO, target(f"{hits} / ({hits} + sum({rate(JOB_INSTANCE(redis.KEYSPACE_MISSES.name))}))", "hit ratio"),
            width=6, maximum=1,
        ),
        stat(
            "Redis persistence", "Whether the last RDB snapshot and the last AOF write succeeded, and AOF is on "
            "(the platform's DR plan relies on RDB + AOF).",
            COUNT,
            target(f"min({JOB_INSTANCE(redis.RDB_LAST_BGSAVE_STATUS.name)})", "RDB last save"),
            target(f"min({JOB_INSTANCE(redis.AOF_LAST_WRITE_STATUS.name)})", "AOF last write"),
            target(f"min({JOB_INSTANCE(redis.AOF_ENABLED.name)})", "AOF enabled"),
            status=True,
        ),
        stat(
            "Time since last RDB save", "Age of the newest RDB snapshot: what a restore from it would lose.",
            SECONDS,
            target(f"time() - max({JOB_INSTANCE(redis.RDB_LAST_SAVE_TIMESTAMP.name)})", "last save"),
        ),
    ])


def dashboard() -> dict[str, Any]:
    return board(
        "database",
        "Database",
        "PostgreSQL (pool, queries, transactions, replication) and Redis (memory, hit ratio, persistence).",
        tags=["postgresql", "redis"],
        variables=JOB_INSTANCE.variables(platform.UP.name, jobs_matcher(*JOBS)),
        rows=[_pool(), _queries(), _replication(), _redis()],
    )
