"""Rows of (catalog entry, label values, value) grouped into fresh metric families."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import Metric, UnknownMetricFamily

from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.runtime import counter, gauge

Row = tuple[CatalogMetric, Sequence[str], float]


def family(entry: CatalogMetric) -> Metric:
    """An empty family for ``entry``.

    A counter without ``_total`` (dcgm-exporter's names) is exposed untyped: as a counter the
    Prometheus client would rename it ``*_total`` and break the name it is there to keep.
    """
    if entry.type == "counter" and entry.name.endswith("_total"):
        return counter(entry)
    if entry.type == "counter":
        return UnknownMetricFamily(entry.name, entry.help, labels=list(entry.labels))
    return gauge(entry)


def families(rows: Iterable[Row]) -> list[Metric]:
    """One family per entry, in the order entries first appear."""
    grouped: dict[str, Metric] = {}
    for entry, labels, value in rows:
        metric = grouped.get(entry.name)
        if metric is None:
            metric = grouped[entry.name] = family(entry)
        metric.add_metric(labels, value)
    return list(grouped.values())
