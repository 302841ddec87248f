"""Micrometer's meters as a Spring Boot 2.7 service registers them, written in its Prometheus format.

A :class:`TimerFamily` is one timer name with a label set per series; each series keeps count,
total time, the SLO buckets (when the timer has service-level objectives) and micrometer's
time-windowed max. Series appear on first use, as micrometer registers meters lazily::

    # TYPE http_server_requests_seconds histogram
    http_server_requests_seconds_bucket{application="api-gateway",uri="/api/v1/studies",...,le="0.1"} 41.0
    http_server_requests_seconds_bucket{...,le="+Inf"} 42.0
    http_server_requests_seconds_count{...} 42.0
    http_server_requests_seconds_sum{...} 1.87
    # TYPE http_server_requests_seconds_max gauge
    http_server_requests_seconds_max{...} 0.131
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import (
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.catalog.gateway import micrometer_le

#: micrometer's distributionStatisticExpiry and bufferLength defaults (the window of ``_max``).
MAX_EXPIRY_SECONDS = 120.0
MAX_BUFFER_LENGTH = 3
#: What Spring Boot 2.7's /actuator/prometheus answers with.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _TimeWindow:
    """The ring behind micrometer's time-windowed statistics: ``buffer_length`` buffers that every
    value goes into; every ``expiry / buffer_length`` seconds the current one is cleared and the
    next becomes current, so the current one covers roughly the last ``expiry`` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 expiry: float = MAX_EXPIRY_SECONDS, buffer_length: int = MAX_BUFFER_LENGTH):
        self._clock = clock
        self._rotation = expiry / buffer_length
        self._ring = [self._empty() for _ in range(buffer_length)]
        self._current = 0
        self._last_rotation = clock()

    def _empty(self):
        raise NotImplementedError

    def _rotate(self) -> None:
        elapsed = self._clock() - self._last_rotation
        if elapsed < self._rotation:
            return
        steps = int(elapsed // self._rotation)
        for _ in range(min(steps, len(self._ring))):
            self._ring[self._current] = self._empty()
            self._current = (self._current + 1) % len(self._ring)
        self._last_rotation += steps * self._rotation


class WindowMax(_TimeWindow):
    """micrometer's TimeWindowMax: the largest value of roughly the last ``expiry`` seconds."""

    def _empty(self) -> float:
        return 0.0

    def record(self, value: float) -> None:
        self._rotate()
        self._ring = [max(slot, value) for slot in self._ring]

    def value(self) -> float:
        self._rotate()
        return self._ring[self._current]


class WindowPercentiles(_TimeWindow):
    """micrometer's TimeWindowPercentileHistogram: percentiles of roughly the last ``expiry``
    seconds, with the same ring as :class:`WindowMax`."""

    def _empty(self) -> list[float]:
        return []

    def record(self, value: float) -> None:
        self._rotate()
        for values in self._ring:
            values.append(value)

    def value(self, quantile: float) -> float:
        """The value at ``quantile`` (nearest rank), 0 when the window holds nothing."""
        self._rotate()
        values = sorted(self._ring[self._current])
        if not values:
            return 0.0
        return values[max(0, math.ceil(quantile * len(values)) - 1)]


class Timer:
    """One timer series: count, total seconds, max, cumulative counts at the SLO bounds, and the
    client-side percentiles when the timer publishes some."""

    def __init__(self, slo: Sequence[float], publishes_percentiles: bool, clock: Callable[[], float]):
        self.slo = tuple(slo)
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(self.slo)
        self.max = WindowMax(clock)
        self.percentiles = WindowPercentiles(clock) if publishes_percentiles else None

    def record(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        for i, bound in enumerate(self.slo):
            if seconds <= bound:
                self.buckets[i] += 1
        self.max.record(seconds)
        if self.percentiles is not None:
            self.percentiles.record(seconds)


class TimerFamily:
    """A micrometer timer name: its series by label values (in the catalog entry's label order).

    With ``slo`` bounds it is written as a histogram, without as a summary (with a ``quantile``
    series per configured percentile, as ``management.metrics.distribution.percentiles`` makes
    micrometer write them); ``max_entry`` is the separate ``*_max`` gauge micrometer always writes.
    """

    def __init__(self, entry: CatalogMetric, max_entry: CatalogMetric, slo: Sequence[float] = (),
                 percentiles: Sequence[float] = (), clock: Callable[[], float] = time.monotonic):
        if max_entry.labels != entry.labels:
            raise ValueError(f"{max_entry.name} must have the labels of {entry.name}")
        if slo and percentiles:
            raise ValueError(f"{entry.name}: a timer is written with SLO buckets or percentiles, not both")
        self.entry, self.max_entry, self.slo, self._clock = entry, max_entry, tuple(slo), clock
        self.percentiles = tuple(percentiles)
        self._series: dict[tuple[str, ...], Timer] = {}
        self._lock = threading.Lock()

    def record(self, seconds: float, **labels: str) -> None:
        key = tuple(labels[name] for name in self.entry.labels)
        if len(labels) != len(key):
            raise ValueError(f"{self.entry.name} takes the labels {self.entry.labels}, not {sorted(labels)}")
        with self._lock:
            timer = self._series.get(key)
            if timer is None:
                timer = self._series[key] = Timer(self.slo, bool(self.percentiles), self._clock)
            timer.record(seconds)

    def snapshot(self) -> dict[tuple[str, ...], tuple[int, float]]:
        """``{label values: (count, total seconds)}`` of every series."""
        with self._lock:
            return {key: (timer.count, timer.total) for key, timer in self._series.items()}

    def families(self) -> list[Metric]:
        labels = list(self.entry.labels)
        if self.slo:
            main: Metric = HistogramMetricFamily(self.entry.name, self.entry.help, labels=labels)
        else:
            main = SummaryMetricFamily(self.entry.name, self.entry.help, labels=labels)
        peak = GaugeMetricFamily(self.max_entry.name, self.max_entry.help, labels=labels)
        with self._lock:
            for key, timer in sorted(self._series.items()):
                if self.slo:
                    buckets = [(micrometer_le(b), float(c)) for b, c in zip(self.slo, timer.buckets, strict=True)]
                    main.add_metric(list(key), buckets + [("+Inf", float(timer.count))], timer.total)
                else:
                    for quantile in self.percentiles:
                        value = timer.percentiles.value(quantile)
                        main.samples.append(Sample(self.entry.name, {**dict(zip(labels, key)), "quantile": repr(quantile)}, value))
                    main.add_metric(list(key), count_value=timer.count, sum_value=timer.total)
                peak.add_metric(list(key), timer.max.value())
        return [main, peak]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]):
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merged(families: Iterable[Metric]) -> list[Metric]:
    """Families of the same name (one per pool, say) as one family, as a registry writes them."""
    by_name: dict[str, Metric] = {}
    for family in families:
        if family.name in by_name:
            by_name[family.name].samples.extend(family.samples)
        else:
            by_name[family.name] = family
    return list(by_name.values())


def exposition(families: Iterable[Metric]) -> tuple[bytes, str]:
    """The Prometheus text format of ``families`` and its content type, as /actuator/prometheus serves it."""
    return generate_latest(_Families(merged(families))), CONTENT_TYPE
