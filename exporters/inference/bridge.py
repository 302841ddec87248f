"""TF Serving's own metrics (``/monitoring/prometheus/metrics``), re-exposed under stable names.

TF Serving writes latency in microseconds, no HELP lines and ``:tensorflow:serving:*`` names
that ``promtool check metrics`` rejects. The bridge renames each family after the catalog,
documents it, renames its labels (``model_name`` -> ``model``, ``API`` -> ``api``) and converts
microseconds to seconds, bucket bounds included, so the histograms keep TF's exact bounds and
give the same quantiles::

    :tensorflow:serving:request_latency_bucket{model_name="m",API="predict",entrypoint="REST",le="121440"} 7

becomes::

    medobs_inference_server_request_duration_seconds_bucket{api="predict",entrypoint="REST",le="0.12144",model="m"} 7.0

Batching families appear only when TF Serving exposes them (batching enabled). Labels a newer
TF Serving adds and the catalog does not declare are summed away, so the names stay stable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.catalog import inference as catalog
from medobs.core.catalog import tfserving
from medobs.core.runtime import counter

#: Power of ten that turns a source unit into the target's base unit.
_EXPONENT = {"microseconds": -6, "": 0}


@dataclass(frozen=True)
class Bridge:
    """One TF Serving family and the catalog family it becomes; labels map by position."""

    source: CatalogMetric
    target: CatalogMetric

    @property
    def exponent(self) -> int:
        return _EXPONENT[self.source.unit]


BRIDGES = (
    Bridge(tfserving.REQUEST_COUNT, catalog.SERVER_REQUESTS),
    Bridge(tfserving.REQUEST_LATENCY, catalog.SERVER_REQUEST_DURATION),
    Bridge(tfserving.RUNTIME_LATENCY, catalog.SERVER_RUNTIME_DURATION),
    Bridge(tfserving.BATCH_QUEUING_LATENCY, catalog.SERVER_BATCH_QUEUING_DURATION),
    Bridge(tfserving.BATCH_WRAPPED_RUN_COUNT, catalog.SERVER_BATCHED_RUNS),
)
_BY_SOURCE = {bridge.source.name: bridge for bridge in BRIDGES}


def scaled_bound(le: str, exponent: int) -> str:
    """A bucket bound times 10**exponent, exactly in decimal (``"121440"``, -6 -> ``"0.12144"``)."""
    if exponent == 0 or le == "+Inf":
        return floatToGoString(le)
    return floatToGoString(float(Decimal(le).scaleb(exponent)))


def bridge_families(text: str) -> list[Metric]:
    """The catalog families for TF Serving's exposition ``text``; ValueError when it is not one."""
    families = []
    for family in text_string_to_metric_families(text):
        bridge = _BY_SOURCE.get(family.name)
        if bridge is None:
            continue
        if bridge.source.type == "histogram":
            families.append(_histogram(bridge, family))
        else:
            families.append(_counter(bridge, family))
    if not families:
        raise ValueError("the answer has none of TF Serving's :tensorflow:serving:* metrics")
    return families


def _key(bridge: Bridge, labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in bridge.source.labels)


def _counter(bridge: Bridge, family: Metric) -> CounterMetricFamily:
    totals: dict[tuple[str, ...], float] = defaultdict(float)
    for sample in family.samples:
        if sample.name in (family.name, family.name + "_total"):
            totals[_key(bridge, sample.labels)] += sample.value
    converted = counter(bridge.target)
    for key, value in sorted(totals.items()):
        converted.add_metric(list(key), value)
    return converted


def _histogram(bridge: Bridge, family: Metric) -> HistogramMetricFamily:
    buckets: dict[tuple[str, ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for sample in family.samples:
        key = _key(bridge, sample.labels)
        if sample.name == family.name + "_bucket":
            buckets[key][sample.labels.get("le", "")] += sample.value
        elif sample.name == family.name + "_sum":
            sums[key] += sample.value * 10.0**bridge.exponent
    converted = HistogramMetricFamily(bridge.target.name, bridge.target.help, labels=list(bridge.target.labels))
    for key, counts in sorted(buckets.items()):
        converted.add_metric(list(key), _converted_buckets(family.name, counts.items(), bridge.exponent), sums[key])
    return converted


def _converted_buckets(name: str, counts: Iterable[tuple[str, float]], exponent: int) -> list[tuple[str, float]]:
    try:
        ordered = sorted(counts, key=lambda bucket: float(bucket[0]))
        converted = [(scaled_bound(le, exponent), value) for le, value in ordered]
    except (ValueError, InvalidOperation):
        raise ValueError(f"{name} has a bucket bound that is not a number") from None
    if not converted or converted[-1][0] != "+Inf":
        raise ValueError(f"{name} has no +Inf bucket")
    return converted
