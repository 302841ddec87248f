"""The gateway's request rate limiter: Spring Cloud Gateway's ``RedisRateLimiter``, a token bucket
per key kept in the real Redis, so that Redis sees the gateway's lookups on every routed request
(redis_exporter's keyspace hits and misses: the Database board's Redis hit ratio).

As Spring Cloud Gateway's ``RequestRateLimiter`` filter does, each request runs one Lua script
over ``request_rate_limiter.{KEY}.tokens`` and ``request_rate_limiter.{KEY}.timestamp``: the
bucket refills at ``replenish_rate`` tokens a second up to ``burst_capacity``, a request takes a
token or is refused (the gateway answers 429), and both keys expire after twice the time the
bucket takes to fill. ``KEY`` (the KeyResolver's answer) is the simulator's namespace and the
route, so that simulators sharing one Redis keep their own buckets. A Redis that does not answer
lets every request through, as RedisRateLimiter does; one line is logged when it stops answering
and one when it answers again.
"""

from __future__ import annotations

import logging
import os
import time

import redis

log = logging.getLogger("medobs.simulator.ratelimit")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The platform's limits per route: far above the traffic the scenarios send (50 requests/s at most).
REPLENISH_RATE = 100
BURST_CAPACITY = 200
#: Seconds a Redis command may take before the request goes through unlimited.
REDIS_TIMEOUT = 0.5

# The token bucket, in the manner of Spring Cloud Gateway's request_rate_limiter.lua.
_BUCKET = """
local tokens_key, timestamp_key = KEYS[1], KEYS[2]
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, requested = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl = math.floor(capacity / rate * 2)
local tokens = tonumber(redis.call("get", tokens_key)) or capacity
local refreshed = tonumber(redis.call("get", timestamp_key)) or 0
local filled = math.min(capacity, tokens + math.max(0, now - refreshed) * rate)
local allowed = filled >= requested
if allowed then filled = filled - requested end
if ttl > 0 then
  redis.call("setex", tokens_key, ttl, filled)
  redis.call("setex", timestamp_key, ttl, now)
end
return {allowed and 1 or 0, filled}
"""


def bucket_keys(key: str) -> list[str]:
    """Spring Cloud Gateway's key names of one bucket."""
    prefix = f"request_rate_limiter.{{{key}}}"
    return [f"{prefix}.tokens", f"{prefix}.timestamp"]


class RateLimiter:
    """Token buckets in the Redis at ``url`` (password from ``$REDIS_PASSWORD`` when set)."""

    def __init__(self, url: str, namespace: str, replenish_rate: int = REPLENISH_RATE,
                 burst_capacity: int = BURST_CAPACITY):
        password = {"password": os.environ["REDIS_PASSWORD"]} if os.environ.get("REDIS_PASSWORD") else {}
        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
                                           **password)
        self.address = _address(self.client)
        self.namespace = namespace
        self.replenish_rate, self.burst_capacity = replenish_rate, burst_capacity
        self._bucket = self.client.register_script(_BUCKET)
        self._answering = True

    def allows(self, route_id: str) -> bool:
        """Whether the route's bucket has a token for one more request (it takes it)."""
        keys = bucket_keys(f"{self.namespace}:{route_id}")
        try:
            allowed, _ = self._bucket(keys=keys, args=[self.replenish_rate, self.burst_capacity, time.time(), 1])
        except redis.RedisError as error:
            if self._answering:
                log.warning("Redis at %s does not answer (%s): requests pass unlimited until it does",
                            self.address, type(error).__name__)
            self._answering = False
            return True
        if not self._answering:
            log.info("Redis at %s answers again: requests are rate limited", self.address)
        self._answering = True
        return bool(allowed)

    def close(self) -> None:
        self.client.close()


def _address(client: redis.Redis) -> str:
    """Where the client connects, without credentials."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
