"""The metric catalog: every metric the package exposes or queries, in one place.

Exporters build their metric families from these entries, and dashboards, alerts and SLOs
take names from them, so a rename cannot silently break a panel or an alert::

    from medobs.core.catalog import gateway
    f"sum(rate({gateway.HTTP_SERVER_REQUESTS.count}[$__rate_interval]))"

Each domain module (``gateway``, ``tfserving``, ``postgres`` ...) declares its entries with
:func:`metric`; :data:`ALL` maps every name to its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram", "summary", "info"]

#: Who exposes a metric: the package's own exporters, or an upstream component.
SOURCES = (
    "medobs-gpu",
    "medobs-queue",
    "medobs-inference",
    "medobs-backup",
    "medobs-slo",
    "micrometer",
    "spring-cloud-gateway",
    "hikaricp",
    "tfserving",
    "postgres-exporter",
    "redis-exporter",
    "rabbitmq-prometheus",
    "cadvisor",
    "kube-state-metrics",
    "cert-manager",
    "node-exporter",
    "prometheus",
    "dcgm-exporter",
)


@dataclass(frozen=True)
class Metric:
    """One metric family, named as PromQL queries it.

    ``name`` is the family name: counters carry ``_total`` where their source writes it,
    histograms and summaries are named without ``_bucket`` / ``_sum`` / ``_count``.
    ``unit`` is a Prometheus base unit (seconds, bytes, ratio ...) or empty.
    """

    name: str
    type: MetricType
    help: str
    source: str
    labels: tuple[str, ...] = ()
    unit: str = ""

    def __str__(self) -> str:
        return self.name

    @property
    def bucket(self) -> str:
        return self._series("_bucket", "histogram")

    @property
    def sum(self) -> str:
        return self._series("_sum", "histogram", "summary")

    @property
    def count(self) -> str:
        return self._series("_count", "histogram", "summary")

    def _series(self, suffix: str, *types: str) -> str:
        if self.type not in types:
            raise AttributeError(f"{self.name} is a {self.type}; it has no {suffix} series")
        return self.name + suffix

    @property
    def series_names(self) -> tuple[str, ...]:
        """Every sample name this family produces in the Prometheus text format."""
        if self.type == "histogram":
            return (self.bucket, self.sum, self.count)
        if self.type == "summary":
            return (self.name, self.sum, self.count)
        return (self.name,)


ALL: dict[str, Metric] = {}


def metric(
    name: str,
    type: MetricType,
    help: str,
    *,
    source: str,
    labels: tuple[str, ...] | list[str] = (),
    unit: str = "",
) -> Metric:
    """Declare a catalog entry (called by the domain modules at import time)."""
    if name in ALL:
        raise ValueError(f"metric {name} is declared twice in the catalog")
    if source not in SOURCES:
        raise ValueError(f"metric {name}: unknown source {source!r}")
    entry = Metric(name, type, help, source, tuple(labels), unit)
    ALL[name] = entry
    return entry


_BUILD_INFO_HELP = "1, with the exporter's version, source revision and Python version."
_BUILD_INFO_LABELS = ("version", "revision", "python")


def exporter_health(prefix: str, source: str, what: str) -> tuple[Metric, Metric, Metric, Metric]:
    """The four self-health metrics every exporter of ours exposes, under ``prefix`` (and its
    ``{prefix}_build_info``, found from the ``up`` entry by :func:`build_info`)."""
    metric(f"{prefix}_build_info", "gauge", _BUILD_INFO_HELP, source=source, labels=_BUILD_INFO_LABELS)
    return (
        metric(f"{prefix}_up", "gauge", f"1 if the last collection from {what} succeeded, else 0.", source=source),
        metric(
            f"{prefix}_scrape_duration_seconds",
            "gauge",
            f"Seconds the last collection from {what} took.",
            source=source,
            unit="seconds",
        ),
        metric(
            f"{prefix}_scrape_errors_total",
            "counter",
            f"Failed collections from {what}, by kind of error.",
            source=source,
            labels=("kind",),
        ),
        metric(
            f"{prefix}_last_success_timestamp_seconds",
            "gauge",
            f"Unix time of the last successful collection from {what}.",
            source=source,
            unit="seconds",
        ),
    )


def build_info(up: Metric) -> Metric:
    """The ``*_build_info`` entry of the exporter whose ``*_up`` entry is ``up`` (made up for one
    outside the catalog, a test's)."""
    name = up.name.removesuffix("_up") + "_build_info"
    return ALL.get(name) or Metric(name, "gauge", _BUILD_INFO_HELP, up.source, _BUILD_INFO_LABELS)


_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def lookup(series_name: str) -> Metric | None:
    """The catalog entry a sample name belongs to (``x_bucket`` finds histogram ``x``)."""
    if series_name in ALL:
        return ALL[series_name]
    for suffix in _SERIES_SUFFIXES:
        if series_name.endswith(suffix):
            entry = ALL.get(series_name[: -len(suffix)])
            if entry is not None and series_name in entry.series_names:
                return entry
    return None


def _load_domains() -> None:
    from medobs.core.catalog import (  # noqa: F401  (importing declares the entries)
        gateway,
        gpu,
        inference,
        kubernetes,
        platform,
        postgres,
        queue,
        redis,
        slo,
        tfserving,
    )


_load_domains()
