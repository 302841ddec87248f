"""PostgreSQL as prometheus-postgres-exporter (0.11, Debian 12) exposes it."""

from medobs.core.catalog import metric

_DB = ("datname",)
UP = metric("pg_up", "gauge", "1 if the exporter could query PostgreSQL.", source="postgres-exporter")
XACT_COMMIT = metric(
    "pg_stat_database_xact_commit", "counter", "Transactions committed (pg_stat_database).",
    source="postgres-exporter", labels=("datid", "datname"),
)
XACT_ROLLBACK = metric(
    "pg_stat_database_xact_rollback", "counter", "Transactions rolled back (pg_stat_database).",
    source="postgres-exporter", labels=("datid", "datname"),
)
NUMBACKENDS = metric(
    "pg_stat_database_numbackends", "gauge", "Backends connected to each database.",
    source="postgres-exporter", labels=("datid", "datname"),
)
DEADLOCKS = metric(
    "pg_stat_database_deadlocks", "counter", "Deadlocks detected.",
    source="postgres-exporter", labels=("datid", "datname"),
)
BLKS_HIT = metric(
    "pg_stat_database_blks_hit", "counter", "Disk blocks found in the buffer cache.",
    source="postgres-exporter", labels=("datid", "datname"),
)
BLKS_READ = metric(
    "pg_stat_database_blks_read", "counter", "Disk blocks read from disk.",
    source="postgres-exporter", labels=("datid", "datname"),
)
ACTIVITY_COUNT = metric(
    "pg_stat_activity_count", "gauge", "Connections by database and state (pg_stat_activity).",
    source="postgres-exporter", labels=("datname", "state"),
)
ACTIVITY_MAX_TX_DURATION = metric(
    "pg_stat_activity_max_tx_duration", "gauge", "Longest running transaction, by state.",
    source="postgres-exporter", labels=("datname", "state"), unit="seconds",
)
MAX_CONNECTIONS = metric(
    "pg_settings_max_connections", "gauge", "The server's max_connections setting.",
    source="postgres-exporter",
)
REPLICATION_LAG = metric(
    "pg_replication_lag", "gauge",
    "Seconds since the replica last replayed a transaction (replicas only).",
    source="postgres-exporter", unit="seconds",
)
IS_REPLICA = metric(
    "pg_replication_is_replica", "gauge", "1 on a server in recovery (a replica).",
    source="postgres-exporter",
)
REPLICATION_SLOT_LAG_BYTES = metric(
    "pg_stat_replication_pg_wal_lsn_diff", "gauge",
    "Bytes of WAL between the primary and each replica's replay position.",
    source="postgres-exporter", labels=("application_name", "client_addr", "state", "slot_name"),
    unit="bytes",
)
DATABASE_SIZE = metric(
    "pg_database_size_bytes", "gauge", "Size of each database.",
    source="postgres-exporter", labels=_DB, unit="bytes",
)
XID_AGE = metric(
    "pg_database_xid_age", "gauge",
    "age(datfrozenxid): transactions until wraparound protection, per database (custom query).",
    source="postgres-exporter", labels=_DB,
)
STATEMENTS_SECONDS = metric(
    "pg_stat_statements_seconds_total", "counter",
    "Time spent executing statements (pg_stat_statements custom query), by database.",
    source="postgres-exporter", labels=_DB, unit="seconds",
)
STATEMENTS_CALLS = metric(
    "pg_stat_statements_calls_total", "counter",
    "Statements executed (pg_stat_statements custom query), by database.",
    source="postgres-exporter", labels=_DB,
)
