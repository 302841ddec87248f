"""Shared building blocks of the dashboards: datasource, variables, selectors, panels, layout.

Every board follows grafana's dashboard-linter conventions (``medobs dashboards lint`` checks
them): a ``datasource`` variable used by every panel and target (its default the site's
``grafana.datasource_uid``), a ``cluster`` variable and a pair of filter variables (``job`` /
``instance``, ``namespace`` / ``pod`` or ``service`` / ``slo``) that every selector carries,
``$__rate_interval`` in ``rate`` / ``increase``, a unit and a description on every panel, a
stable uid from :data:`medobs.core.links.DASHBOARD_UIDS`, tags, and not editable in the UI::

    requests = JOB_INSTANCE(gateway.HTTP_SERVER_REQUESTS.count)
    timeseries("Request rate", "Requests per second.", REQUESTS_PER_SECOND,
               target(f"sum by (outcome) ({rate(requests)})", "{{outcome}}"))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import attr
from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    DashboardLink,
    GridPos,
    Panel,
    Repeat,
    RowPanel,
    Stat,
    StateTimeline,
    Table,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

from medobs.core import scrape_jobs, site
from medobs.core.links import DASHBOARD_UIDS

#: The name of the provisioned Prometheus datasource (its uid is the site's ``grafana.datasource_uid``).
DATASOURCE_NAME = "Prometheus"
#: What every panel and target points at: the ``datasource`` variable.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Every board carries this tag; ``publish --prune`` only touches boards with it (and our uid prefix).
MANAGED_TAG = "medobs"
#: Grafana's range for rate() / increase(): at least four scrape intervals.
RATE_INTERVAL = "$__rate_interval"
#: Grafana schema of the generated JSON (Grafana 10.4, the docker-compose image).
SCHEMA_VERSION = 39
#: Variable ``refresh`` value "on time range change" (dashboard-linter wants it).
REFRESH_ON_TIME_RANGE_CHANGE = 2

# Grafana units (https://grafana.com/docs/grafana/latest/panels-visualizations/configure-standard-options/).
SECONDS = "s"
BYTES = "bytes"
BYTES_PER_SECOND = "Bps"
RATIO = "percentunit"
REQUESTS_PER_SECOND = "reqps"
OPERATIONS_PER_SECOND = "ops"
COUNT = "short"
CELSIUS = "celsius"
WATTS = "watt"
NONE = "none"
YES_NO = "bool_yes_no"
IMAGES_PER_SECOND = "suffix:img/s"
MESSAGES_PER_SECOND = "suffix:msg/s"
TIMES_BUDGET = "suffix:×"

#: 1 / 0 as OK / failing (health gauges: up, last save succeeded ...).
STATUS_MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "failing", "color": "red"}, "1": {"text": "OK", "color": "green"}}}
]
#: 0 / 1 as OK / firing (alert states).
FIRING_MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "OK", "color": "green"}, "1": {"text": "firing", "color": "red"}}}
]


def rate(selector: str, function: str = "rate") -> str:
    """``rate(selector[$__rate_interval])`` (or ``increase`` ...)."""
    return f"{function}({selector}[{RATE_INTERVAL}])"


def increase(selector: str) -> str:
    return rate(selector, "increase")


def selector(series: str, *matchers: str) -> str:
    """``series{m1, m2}`` (just ``series`` without matchers)."""
    return f"{series}{{{', '.join(matchers)}}}" if matchers else series


def matches_variable(name: str) -> str:
    """``name=~"$name"``: the matcher that applies a multi-value variable."""
    return f'{name}=~"${name}"'


#: The label that tells clusters apart (kube-prometheus-stack's and kubernetes-mixin's ``clusterLabel``).
CLUSTER_LABEL = "cluster"
#: What "All" of the ``cluster`` variable matches: every cluster, and series without the label.
ANY_CLUSTER = ".*"
#: Every selector's cluster filter.
IN_CLUSTER = matches_variable(CLUSTER_LABEL)


@dataclass(frozen=True)
class Scope:
    """The two variables that filter every selector of a board (dashboard-linter's job / instance),
    within the ``cluster`` variable's cluster.

    ``JOB_INSTANCE("up", 'job="gpu"')`` is
    ``up{cluster=~"$cluster", job=~"$job", instance=~"$instance", job="gpu"}``.
    """

    outer: str
    inner: str

    def __call__(self, series: str, *matchers: str) -> str:
        return selector(series, IN_CLUSTER, matches_variable(self.outer), matches_variable(self.inner), *matchers)

    def variables(self, series: str, *matchers: str) -> list[Template]:
        """The two variables, their values read from ``series{matchers}`` in the selected cluster,
        the inner one within the outer."""
        return [
            query_variable(self.outer, selector(series, IN_CLUSTER, *matchers)),
            query_variable(self.inner, selector(series, IN_CLUSTER, matches_variable(self.outer), *matchers)),
        ]


JOB_INSTANCE = Scope("job", "instance")
NAMESPACE_POD = Scope("namespace", "pod")
SERVICE_SLO = Scope("service", "slo")
#: Every filter pair a board may use, outer variable first.
SCOPES = (JOB_INSTANCE, NAMESPACE_POD, SERVICE_SLO)


def jobs_matcher(*job_names: str) -> str:
    """``job=~"a|b"``: the ``job`` labels of the scrape jobs (:mod:`medobs.core.scrape_jobs`) a
    board's job variable offers, for the active site (kube-prometheus-stack's where it scrapes them)."""
    return f'job=~"{"|".join(sorted(scrape_jobs.job_label(name) for name in job_names))}"'


def quantiles(bucket_selector: str, *by: str) -> list[Target]:
    """p50 / p95 / p99 of a histogram, one target each."""
    grouping = ", ".join(("le", *by))
    suffix = " ".join(f"{{{{{label}}}}}" for label in by)
    return [
        target(
            f"histogram_quantile({q}, sum by ({grouping}) ({rate(bucket_selector)}))",
            f"p{round(q * 100)} {suffix}".strip(),
        )
        for q in (0.5, 0.95, 0.99)
    ]


def mean(sum_selector: str, count_selector: str, *by: str) -> str:
    """Mean per event of a histogram or summary over the rate interval: rate of _sum / rate of _count."""
    total = f"sum by ({', '.join(by)})" if by else "sum"
    return f"{total} ({rate(sum_selector)}) / {total} ({rate(count_selector)})"


def share_or_zero(part: str, whole: str) -> str:
    """``sum(rate(part)) / sum(rate(whole))``, 0 (not "no data") when ``part`` has no series yet."""
    return f"(sum({rate(part)}) or vector(0)) / sum({rate(whole)})"


def datasource_variable() -> Template:
    """The ``datasource`` variable; :func:`board` makes the site's datasource its default."""
    return Template(name="datasource", query="prometheus", type="datasource", label="Data source", regex="", hide=0)


def cluster_variable() -> Template:
    """The ``cluster`` variable, as kubernetes-mixin's boards have it (``label_values(up, cluster)``,
    refreshed on time-range change), with an "All" option whose value ``.*`` also matches series
    that carry no ``cluster`` label: a single-cluster Prometheus has no such label, returns no values,
    and Grafana then selects "All", so ``cluster=~"$cluster"`` keeps every series. Its default is the
    site's ``cluster`` (:func:`board`), kept when that cluster exists."""
    return Template(
        name=CLUSTER_LABEL, query=f"label_values(up, {CLUSTER_LABEL})", dataSource=DATASOURCE,
        label=CLUSTER_LABEL.title(), includeAll=True, allValue=ANY_CLUSTER,
        refresh=REFRESH_ON_TIME_RANGE_CHANGE, regex="", sort=1,
    )


def query_variable(name: str, source: str) -> Template:
    """A multi-value variable with "All" (``.+``), refreshed on time-range change."""
    return Template(
        name=name, query=f"label_values({source}, {name})", dataSource=DATASOURCE,
        label=name.title(), multi=True, includeAll=True, allValue=".+", default="$__all",
        refresh=REFRESH_ON_TIME_RANGE_CHANGE, regex="", sort=1,
    )


def target(expr: str, legend: str = "", *, instant: bool = False) -> Target:
    return Target(
        expr=expr, legendFormat=legend, instant=instant, datasource=DATASOURCE,
        format="table" if instant else "time_series",
    )


def _with_ref_ids(targets: Sequence[Target]) -> list[Target]:
    return [attr.evolve(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)]


def _common(title: str, description: str, targets: Sequence[Target], width: int) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "dataSource": DATASOURCE,
        "targets": _with_ref_ids(targets),
        "gridPos": GridPos(h=8, w=width, x=0, y=0),
        "editable": False,
    }


def timeseries(
    title: str,
    description: str,
    unit: str,
    *targets: Target,
    width: int = 8,
    threshold: float | None = None,
    stepped: bool = False,
    minimum: int | None = 0,
    maximum: int | None = None,
) -> TimeSeries:
    """A time-series panel from 0 up (``minimum=None`` for values that go negative); ``threshold``
    draws a red line at that value."""
    extra: dict[str, Any] = {}
    if threshold is not None:
        extra = {
            "thresholdsStyleMode": "line",
            "thresholds": [{"color": "green", "value": None}, {"color": "red", "value": threshold}],
        }
    return TimeSeries(
        **_common(title, description, targets, width),
        unit=unit,
        legendDisplayMode="table" if len(targets) > 2 else "list",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        fillOpacity=10,
        lineInterpolation="stepAfter" if stepped else "linear",
        valueMin=minimum,
        valueMax=maximum,
        **extra,
    )


def stat(title: str, description: str, unit: str, *targets: Target, width: int = 6, status: bool = False) -> Stat:
    """A single-value panel; ``status`` maps 1 / 0 to OK / failing."""
    return Stat(
        **_common(title, description, targets, width),
        format=unit,
        reduceCalc="lastNotNull",
        graphMode="none" if status else "area",
        colorMode="background" if status else "value",
        mappings=STATUS_MAPPINGS if status else [],
        textMode="value_and_name",
    )


def table(title: str, description: str, *targets: Target, width: int = 24) -> Table:
    """A table of instant queries (one row per series, labels as columns)."""
    return Table(
        **_common(title, description, targets, width),
        unit=NONE,
        transformations=[{"id": "merge", "options": {}}],
    )


def state_timeline(title: str, description: str, unit: str, *targets: Target, width: int = 24) -> StateTimeline:
    """Alert states over time: 0 OK, 1 firing (:data:`FIRING_MAPPINGS`)."""
    panel = StateTimeline(**_common(title, description, targets, width), mappings=FIRING_MAPPINGS)
    return attr.evolve(panel, extraJson={"fieldConfig": {"defaults": {"unit": unit}}})


@dataclass(frozen=True)
class Row:
    """A titled row of panels; ``repeat`` names a variable to repeat the row for each of its values."""

    title: str
    panels: Sequence[Panel]
    repeat: str | None = None


def _layout(rows: Sequence[Row]) -> list[Panel]:
    """Rows of panels placed left to right on Grafana's 24-column grid, wrapping when full."""
    placed: list[Panel] = []
    y = 0
    for row in rows:
        placed.append(RowPanel(
            title=row.title, gridPos=GridPos(h=1, w=24, x=0, y=y), editable=False,
            repeat=Repeat(variable=row.repeat),
        ))
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            grid = panel.gridPos
            if x + grid.w > 24:
                x, y = 0, y + line_height
            placed.append(attr.evolve(panel, gridPos=GridPos(h=grid.h, w=grid.w, x=x, y=y)))
            x += grid.w
            line_height = max(line_height, grid.h)
        y += line_height
    return placed


def board(
    key: str,
    title: str,
    description: str,
    *,
    tags: Sequence[str],
    variables: Sequence[Template],
    rows: Sequence[Row],
    time_from: str = "now-6h",
) -> dict[str, Any]:
    """The dashboard JSON model of one board (uid from :data:`medobs.core.links.DASHBOARD_UIDS`)."""
    dashboard = Dashboard(
        title=title,
        uid=DASHBOARD_UIDS[key],
        description=description,
        tags=sorted({MANAGED_TAG, *tags}),
        editable=False,
        graphTooltip=1,
        refresh="1m",
        schemaVersion=SCHEMA_VERSION,
        timezone="browser",
        time=Time(time_from, "now"),
        templating=Templating(list=[datasource_variable(), cluster_variable(), *variables]),
        links=[DashboardLink(asDropdown=True, includeVars=False, keepTime=True, tags=[MANAGED_TAG], title="medobs")],
        panels=_layout(rows),
    ).auto_panel_ids()
    model = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    defaults = {
        "datasource": {"selected": True, "text": DATASOURCE_NAME, "value": site.current().grafana.datasource_uid},
        CLUSTER_LABEL: {"selected": True, "text": site.current().cluster, "value": site.current().cluster},
    }
    for variable in model["templating"]["list"]:
        if variable["name"] in defaults:
            variable["current"] = defaults[variable["name"]]
        elif variable["current"].get("value") == "$__all":
            variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return _without_nulls(model)


def _without_nulls(value: Any) -> Any:
    """``value`` without the keys grafanalib writes as ``null`` (``datasource: null`` on rows,
    ``color: null`` ...): Grafana reads an absent key as the same default, but its schema
    (grafana-foundation-sdk) rejects ``null`` where it expects an object. A threshold step's
    ``value: null`` (the base step) is meaningful and stays."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None or k == "value"}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
