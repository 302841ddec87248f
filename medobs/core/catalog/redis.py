"""Redis as prometheus-redis-exporter (1.45, Debian 12) exposes it."""

from medobs.core.catalog import metric

UP = metric("redis_up", "gauge", "1 if the exporter could reach Redis.", source="redis-exporter")
MEMORY_USED = metric(
    "redis_memory_used_bytes", "gauge", "Memory allocated by Redis.",
    source="redis-exporter", unit="bytes",
)
MEMORY_MAX = metric(
    "redis_memory_max_bytes", "gauge", "The maxmemory setting (0 when unlimited).",
    source="redis-exporter", unit="bytes",
)
KEYSPACE_HITS = metric(
    "redis_keyspace_hits_total", "counter", "Successful key lookups.", source="redis-exporter",
)
KEYSPACE_MISSES = metric(
    "redis_keyspace_misses_total", "counter", "Failed key lookups.", source="redis-exporter",
)
EVICTED_KEYS = metric(
    "redis_evicted_keys_total", "counter", "Keys evicted because of maxmemory.",
    source="redis-exporter",
)
CONNECTED_CLIENTS = metric(
    "redis_connected_clients", "gauge", "Client connections.", source="redis-exporter",
)
RDB_LAST_BGSAVE_STATUS = metric(
    "redis_rdb_last_bgsave_status", "gauge", "1 if the last RDB save succeeded.",
    source="redis-exporter",
)
RDB_LAST_SAVE_TIMESTAMP = metric(
    "redis_rdb_last_save_timestamp_seconds", "gauge", "Unix time of the last successful RDB save.",
    source="redis-exporter", unit="seconds",
)
RDB_CHANGES_SINCE_LAST_SAVE = metric(
    "redis_rdb_changes_since_last_save", "gauge", "Writes not yet in an RDB snapshot.",
    source="redis-exporter",
)
AOF_ENABLED = metric(
    "redis_aof_enabled", "gauge", "1 if append-only-file persistence is on.", source="redis-exporter",
)
AOF_LAST_WRITE_STATUS = metric(
    "redis_aof_last_write_status", "gauge", "1 if the last AOF write succeeded.",
    source="redis-exporter",
)
AOF_LAST_BGREWRITE_STATUS = metric(
    "redis_aof_last_bgrewrite_status", "gauge", "1 if the last AOF rewrite succeeded.",
    source="redis-exporter",
)
COMMANDS_PROCESSED = metric(
    "redis_commands_processed_total", "counter", "Commands processed.", source="redis-exporter",
)
