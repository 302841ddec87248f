"""Micrometer's meters: SLO buckets, the time-windowed max, and the text Prometheus parses."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from medobs.core.catalog import gateway
from medobs.simulator.micrometer import TimerFamily, WindowMax, exposition

TAGS = dict(application="api-gateway", uri="/api/v1/studies", method="POST", status="201",
            outcome="SUCCESS", exception="None")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def parse(families):
    body, content_type = exposition(families)
    assert content_type.startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}, body.decode()


def test_micrometer_le_is_javas_double_to_string():
    assert [gateway.micrometer_le(b) for b in gateway.SLO_BUCKETS] == ["0.1", "0.25", "0.5", "1.0", "2.0", "5.0"]


def test_slo_histogram_counts_each_value_in_every_bucket_at_or_above_it():
    timer = TimerFamily(gateway.HTTP_SERVER_REQUESTS, gateway.HTTP_SERVER_REQUESTS_MAX, gateway.SLO_BUCKETS)
    for seconds in (0.05, 0.1, 0.3, 0.7, 3.0, 9.0):
        timer.record(seconds, **TAGS)
    found, text = parse(timer.families())
    samples = found[gateway.HTTP_SERVER_REQUESTS.name].samples
    buckets = {s.labels["le"]: s.value for s in samples if s.name == gateway.HTTP_SERVER_REQUESTS.bucket}
    # le is inclusive (0.1 is in le="0.1"), buckets exactly the SLO bounds then +Inf
    assert buckets == {"0.1": 2, "0.25": 2, "0.5": 3, "1.0": 4, "2.0": 4, "5.0": 5, "+Inf": 6}
    assert 'le="1.0"' in text and 'le="1"' not in text
    count = next(s for s in samples if s.name == gateway.HTTP_SERVER_REQUESTS.count)
    total = next(s for s in samples if s.name == gateway.HTTP_SERVER_REQUESTS.sum)
    assert count.value == 6 and total.value == pytest.approx(13.15)
    assert count.labels == TAGS
    assert found[gateway.HTTP_SERVER_REQUESTS_MAX.name].samples[0].value == 9.0


def test_timer_without_slo_is_a_summary_with_max():
    timer = TimerFamily(gateway.HIKARI_ACQUIRE, gateway.HIKARI_ACQUIRE_MAX)
    timer.record(0.002, application="study-service", pool="HikariPool-1")
    timer.record(0.004, application="study-service", pool="HikariPool-1")
    found, _ = parse(timer.families())
    family = found[gateway.HIKARI_ACQUIRE.name]
    assert family.type == "summary"
    values = {s.name: s.value for s in family.samples}
    assert values == {gateway.HIKARI_ACQUIRE.count: 2, gateway.HIKARI_ACQUIRE.sum: pytest.approx(0.006)}
    assert found[gateway.HIKARI_ACQUIRE_MAX.name].samples[0].value == 0.004


def test_series_appear_on_first_use_and_wrong_labels_are_refused():
    timer = TimerFamily(gateway.HTTP_SERVER_REQUESTS, gateway.HTTP_SERVER_REQUESTS_MAX, gateway.SLO_BUCKETS)
    found, _ = parse(timer.families())
    assert found[gateway.HTTP_SERVER_REQUESTS.name].samples == []
    with pytest.raises(KeyError):
        timer.record(0.1, uri="/x")
    with pytest.raises(ValueError, match="takes the labels"):
        timer.record(0.1, **TAGS, extra="1")


def test_window_max_forgets_values_after_the_expiry():
    clock = Clock()
    peak = WindowMax(clock, expiry=120, buffer_length=3)  # rotates every 40 s
    peak.record(5.0)
    clock.now += 30
    peak.record(1.0)
    assert peak.value() == 5.0
    clock.now += 50  # 80 s after 5.0: two rotations, the current slot still holds it
    assert peak.value() == 5.0
    clock.now += 80  # 160 s after 5.0, 130 s after 1.0: both beyond the 120 s window
    assert peak.value() == 0.0
    peak.record(2.0)
    clock.now += 1000  # long idle: every slot cleared once
    assert peak.value() == 0.0


def test_percentiles_are_written_as_summary_quantiles_of_the_recent_window():
    now = [0.0]
    timer = TimerFamily(gateway.HIKARI_USAGE, gateway.HIKARI_USAGE_MAX, percentiles=(0.5, 0.95), clock=lambda: now[0])
    for value in range(1, 101):  # 0.01 .. 1.00 s
        timer.record(value / 100, application="study-service", pool="HikariPool-1")
    summary = timer.families()[0]
    quantiles = {s.labels["quantile"]: s.value for s in summary.samples if "quantile" in s.labels}
    assert quantiles == {"0.5": 0.5, "0.95": 0.95}
    assert next(s.value for s in summary.samples if s.name.endswith("_count")) == 100
    now[0] += 200  # past micrometer's two-minute window: the percentiles forget, the count does not
    summary = timer.families()[0]
    assert {s.labels["quantile"]: s.value for s in summary.samples if "quantile" in s.labels} == {"0.5": 0.0, "0.95": 0.0}
    assert next(s.value for s in summary.samples if s.name.endswith("_count")) == 100


def test_a_timer_has_slo_buckets_or_percentiles_not_both():
    with pytest.raises(ValueError, match="not both"):
        TimerFamily(gateway.HIKARI_USAGE, gateway.HIKARI_USAGE_MAX, slo=(0.1,), percentiles=(0.5,))
