"""The gateway's rate limiter against the real Redis: Spring Cloud Gateway's token bucket, the
lookups redis_exporter counts as keyspace hits and misses, and a Redis that does not answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import requests

from medobs.core.catalog import gateway as catalog
from medobs.simulator.ratelimit import DEFAULT_REDIS_URL, RateLimiter, bucket_keys
from tests.conftest import free_port
from tests.simulator_support import running_platform, sample_sum, scrape, unique


@pytest.fixture
def limiter() -> Iterator[RateLimiter]:
    """Two tokens a second, three at most, in a namespace of our own; its keys removed afterwards."""
    made = RateLimiter(DEFAULT_REDIS_URL, unique("medobs-test"), replenish_rate=2, burst_capacity=3)
    yield made
    made.client.delete(*bucket_keys(f"{made.namespace}:route"))
    made.close()


def test_a_bucket_lets_its_capacity_through_refuses_the_next_and_refills_at_its_rate(limiter):
    assert [limiter.allows("route") for _ in range(4)] == [True, True, True, False]
    tokens, timestamp = bucket_keys(f"{limiter.namespace}:route")
    assert tokens == f"request_rate_limiter.{{{limiter.namespace}:route}}.tokens"
    # both keys expire after twice the time the bucket takes to fill (3 / 2 * 2 = 3 s)
    assert 0 < limiter.client.ttl(tokens) <= 3 and 0 < limiter.client.ttl(timestamp) <= 3
    time.sleep(0.6)  # a token more at 2 a second
    assert limiter.allows("route") and not limiter.allows("route")
    assert limiter.allows("another route")  # a bucket per key
    limiter.client.delete(*bucket_keys(f"{limiter.namespace}:another route"))


def test_every_request_looks_its_bucket_up_in_redis(limiter):
    """What makes the Database board's Redis hit ratio move: two key lookups a request, misses
    for a new bucket, hits afterwards (others' lookups on the shared Redis only add to both)."""
    before = limiter.client.info("stats")
    for _ in range(3):
        limiter.allows("route")
    after = limiter.client.info("stats")
    assert after["keyspace_misses"] - before["keyspace_misses"] >= 2
    assert after["keyspace_hits"] - before["keyspace_hits"] >= 4


def test_without_redis_every_request_passes_and_it_is_said_once(caplog):
    absent = RateLimiter(f"redis://127.0.0.1:{free_port()}/0", unique("medobs-test"), replenish_rate=1,
                         burst_capacity=1)
    with caplog.at_level(logging.INFO, logger="medobs.simulator.ratelimit"):
        assert all(absent.allows("route") for _ in range(3))
    (line,) = caplog.messages
    assert line.startswith(f"Redis at {absent.address} does not answer (ConnectionError)")


def test_the_gateway_answers_429_when_the_routes_bucket_is_empty():
    with running_platform(redis_url=DEFAULT_REDIS_URL) as platform:
        assert platform.gateway.limiter.namespace == f"medobs-sim:{platform.config.database.params['dbname']}"
        platform.gateway.limiter.close()
        platform.gateway.limiter = RateLimiter(DEFAULT_REDIS_URL, unique("medobs-test"), replenish_rate=1,
                                               burst_capacity=1)
        try:
            study = f"{platform.urls['gateway']}/api/v1/studies/17"
            assert [requests.get(study, timeout=10).status_code for _ in range(2)] == [404, 429]
            families = scrape(f"{platform.urls['gateway']}/actuator/prometheus")
            limited = sample_sum(families, catalog.HTTP_SERVER_REQUESTS.count, uri="/api/v1/studies/{studyId}",
                                 status="429", outcome="CLIENT_ERROR")
            assert limited == 1
        finally:
            platform.gateway.limiter.client.delete(*bucket_keys(f"{platform.gateway.limiter.namespace}:study-service"))
