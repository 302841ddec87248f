"""Redis alerts, from redis_exporter: down, persistence (RDB save or AOF write) failing, memory
near maxmemory, keys evicted."""

from __future__ import annotations

from alerts.model import Alert, job, percent, promql, sel
from alerts.thresholds import Thresholds
from medobs.core.catalog import redis

SERVICE = "redis"
JOB = job("redis")


def alerts(t: Thresholds) -> list[Alert]:
    r = t.redis
    max_memory = sel(redis.MEMORY_MAX, job=JOB)
    return [
        Alert(
            name="RedisDown",
            expr=f"{sel(redis.UP, job=JOB)} == 0",
            for_=r.down_for,
            severity="critical",
            service=SERVICE,
            dashboard="system-overview",
            summary="Redis does not answer: sessions and cached results are unavailable.",
            description=(
                "redis_exporter {{ $labels.instance }} has not been able to reach Redis for "
                "@for: sessions and cached results are unavailable."
            ),
        ),
        Alert(
            name="RedisPersistenceFailing",
            expr=promql(f"""
                label_replace({sel(redis.RDB_LAST_BGSAVE_STATUS, job=JOB)} == 0, "persistence", "rdb", "", "")
                or
                label_replace(
                  {sel(redis.AOF_LAST_WRITE_STATUS, job=JOB)} == 0 and on (job, instance) {sel(redis.AOF_ENABLED, job=JOB)} == 1,
                  "persistence", "aof", "", ""
                )
            """),
            for_=r.persistence_for,
            severity="critical",
            service=SERVICE,
            dashboard="system-overview",
            summary="Redis cannot persist its data (RDB save or AOF write failed).",
            description=(
                "Redis at {{ $labels.instance }} has failed to persist its data "
                "({{ $labels.persistence | toUpper }}) for @for: its last write failed and none "
                "has succeeded since. With the default stop-writes-on-bgsave-error (and always "
                "for AOF) Redis refuses writes until it can persist again."
            ),
        ),
        Alert(
            name="RedisMemoryNearMax",
            expr=promql(f"""
                {sel(redis.MEMORY_USED, job=JOB)} / {max_memory} > {r.memory_ratio}
                and on (job, instance)
                {max_memory} > 0
            """),
            for_=r.memory_for,
            severity="warning",
            service=SERVICE,
            dashboard="system-overview",
            summary="Redis is close to its maxmemory.",
            description=(
                "Redis at {{ $labels.instance }} has used {{ $value | humanizePercentage }} of "
                "maxmemory (more than @ratio) for @for: it will soon evict keys or refuse "
                "writes, depending on maxmemory-policy."
            ),
            values={"ratio": percent(r.memory_ratio)},
        ),
        Alert(
            name="RedisEvictingKeys",
            expr=f"rate({sel(redis.EVICTED_KEYS, job=JOB)}[{r.evictions_window}]) > 0",
            for_=r.evictions_for,
            severity="warning",
            service=SERVICE,
            dashboard="system-overview",
            summary="Redis keeps evicting keys to stay under maxmemory.",
            description=(
                "Redis at {{ $labels.instance }} has been evicting {{ $value | humanize }} keys "
                "per second for @for: sessions may be dropped (users logged out) and cached "
                "results recomputed."
            ),
        ),
    ]
