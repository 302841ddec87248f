"""SLIs: Sloth's ``events`` and ``raw`` queries, and the templates that write those queries from a
metric of the catalog.

- ``availability``: requests whose status label matches ``bad`` (or not ``good``) / all requests;
- ``latency``: requests slower than ``threshold``, which must be a bucket bound / all requests;
- ``counters``: the rate of the ``bad`` counter / the rate of the ``total`` counter;
- ``gauge_threshold``: time slices in which the gauge is above ``max`` / observed time slices.

A template also says which series a good and a bad event move, so the generated promtool tests
feed the rules raw samples (:class:`CounterInputs`, :class:`SliceInputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from medobs.core import catalog
from medobs.core.catalog import gateway, inference
from medobs.core.promql import METRIC_NAME
from slo import promql
from slo.promql import Matcher, Selector

W = "{{.window}}"
#: The time slice of gauge_threshold SLIs in queries over a window (reports).
SLICE = "1m"
#: Labels Prometheus adds to every target's series (scrape config and Kubernetes relabelling).
TARGET_LABELS = ("job", "instance", "namespace", "pod", "container", "node")
#: Bucket bounds of the catalog's histograms, for checking latency thresholds.
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    gateway.HTTP_SERVER_REQUESTS.name: gateway.SLO_BUCKETS,
    inference.REQUEST_DURATION.name: inference.LATENCY_BUCKETS,
    inference.PROBE_DURATION.name: inference.LATENCY_BUCKETS,
}


class FieldError(Exception):
    """A bad template field: ``field`` is relative to the template, the spec adds the rest."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class CounterInputs:
    """Series (promtool text) that one good / one bad event increments."""

    good: tuple[str, ...]
    bad: tuple[str, ...]


@dataclass(frozen=True)
class SliceInputs:
    """Time slices: ``presence`` is present in every observed slice, ``gauge`` decides it."""

    presence: str
    gauge: str
    good_value: float
    bad_value: float


@dataclass(frozen=True)
class EventsSli:
    error_query: str
    total_query: str
    #: What the queries return over a window: events per second (``rate``), events (``count``), or unknown.
    scale: Literal["rate", "count"] | None
    #: Raw series for generated tests; None for hand-written queries (tests substitute counters).
    inputs: CounterInputs | SliceInputs | None = None
    #: Time slices: the expression of one slice (1 bad, 0 good, nothing when unobserved). The rules
    #: record it at every evaluation and count the recorded slices over each window, rather than
    #: re-evaluating a subquery over days of minutes; the queries above (subqueries at one-minute
    #: slices) serve reports over any window.
    slice_expr: str | None = None


@dataclass(frozen=True)
class RawSli:
    error_ratio_query: str


def _window_query(query: str, field: str) -> str:
    if not query.strip():
        raise FieldError(field, "is empty")
    if not promql.has_window(query):
        raise FieldError(field, "does not use {{.window}}: every SLI query is evaluated over several windows")
    other = promql.other_template(query)
    if other:
        raise FieldError(field, f"uses {other}; only {{{{.window}}}} is expanded")
    return query.strip()


def events(error_query: str, total_query: str) -> EventsSli:
    error = _window_query(error_query, "error_query")
    total = _window_query(total_query, "total_query")
    return EventsSli(error, total, promql.event_scale(error, total))


def raw(error_ratio_query: str, field: str = "error_ratio_query") -> RawSli:
    return RawSli(_window_query(error_ratio_query, field))


# --- templates -----------------------------------------------------------------------------


def _text(fields: dict, key: str, *, required: bool = True, default: str = "") -> str:
    value = fields.get(key)
    if value is None or value == "":
        if required:
            raise FieldError(key, "is required")
        return default
    if not isinstance(value, str):
        raise FieldError(key, f"expected text, got {value!r}")
    return value


def _number(fields: dict, key: str) -> float:
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(key, f"expected a number, got {value!r}")
    return float(value)


def _metric(fields: dict, key: str, types: tuple[str, ...]) -> catalog.Metric:
    """The catalog entry of a template's metric, checked for type; for a metric the catalog does
    not know (allowed: specs may describe other services), an entry of the first type given."""
    name = _text(fields, key)
    if not METRIC_NAME.match(name):
        raise FieldError(key, f"{name!r} is not a metric name")
    entry = catalog.ALL.get(name)
    if entry is not None and entry.type not in types:
        raise FieldError(key, f"{name} is a {entry.type}; this template needs a {' or '.join(types)}")
    return entry if entry is not None else catalog.Metric(name, types[0], "", "")  # type: ignore[arg-type]  # not registered


def _filter(fields: dict, metric: catalog.Metric, key: str = "filter") -> tuple[Matcher, ...]:
    try:
        matchers = promql.parse_matchers(_text(fields, key, required=False))
    except ValueError as error:
        raise FieldError(key, str(error)) from None
    _check_labels(metric, matchers, key)
    return matchers


def _check_labels(metric: catalog.Metric, matchers: tuple[Matcher, ...], field: str) -> None:
    if metric.name not in catalog.ALL:
        return
    for matcher in matchers:
        if matcher.label not in metric.labels + TARGET_LABELS:
            known = ", ".join(metric.labels + TARGET_LABELS)
            raise FieldError(field, f"{metric.name} has no label {matcher.label!r} (its labels: {known})")


def _sum_rate(selector: Selector) -> str:
    return f"sum(rate({selector}[{W}]))"


def _counter_series(metric: catalog.Metric) -> str:
    return metric.count if metric.type in ("histogram", "summary") else metric.name


def _counter_inputs(bad: Selector, total: Selector) -> CounterInputs:
    """One bad event moves a series both selectors select (or one of each); a good event moves a
    series only ``total`` selects."""
    try:
        good_series = promql.series_labels(total, unlike=bad)
        bad_series = promql.series_labels(bad)
    except ValueError as error:
        raise FieldError("bad", f"cannot build test series: {error}") from None
    bad_moves = [promql.series_text(bad.name, bad_series)]
    if not total.matches(bad.name, bad_series):
        bad_moves.append(promql.series_text(total.name, good_series))
    return CounterInputs(good=(promql.series_text(total.name, good_series),), bad=tuple(bad_moves))


def counter_ratio(bad: Selector, total: Selector) -> EventsSli:
    return EventsSli(_sum_rate(bad), _sum_rate(total), "rate", _counter_inputs(bad, total))


def availability(fields: dict) -> EventsSli:
    metric = _metric(fields, "metric", ("counter", "histogram", "summary"))
    status = _text(fields, "status_label", required=False, default="status")
    if metric.name in catalog.ALL and status not in metric.labels:
        raise FieldError("status_label", f"{metric.name} has no label {status!r} (its labels: {', '.join(metric.labels)})")
    given = [key for key in ("bad", "good") if fields.get(key) not in (None, "")]
    if len(given) != 1:
        raise FieldError("bad", "give exactly one of bad (a regex of bad statuses) or good (a regex of good ones)")
    (key,) = given
    try:
        status_matcher = Matcher(status, "=~" if key == "bad" else "!~", _text(fields, key))
        status_matcher.matches("")
    except Exception as error:  # re.error from a bad regex
        raise FieldError(key, f"bad regular expression: {error}") from None
    total = Selector(_counter_series(metric), _filter(fields, metric))
    return counter_ratio(total.with_matchers(status_matcher), total)


def counters(fields: dict) -> EventsSli:
    selectors = {}
    for key in ("bad", "total"):
        try:
            selector = promql.parse_selector(_text(fields, key))
        except ValueError as error:
            raise FieldError(key, str(error)) from None
        entry = catalog.lookup(selector.name)
        if entry is not None:
            counting = entry.type == "counter" or selector.name != entry.name and entry.type in ("histogram", "summary")
            if not counting:
                raise FieldError(key, f"{selector.name} is a {entry.type}, not a counter")
            _check_labels(entry, selector.matchers, key)
        selectors[key] = selector
    return counter_ratio(selectors["bad"], selectors["total"])


def le_matcher(bound: float) -> Matcher:
    """The ``le`` matcher of a bucket bound. Micrometer and client_python write whole bounds as
    ``1.0``, Go clients (and Prometheus 3, which normalises) as ``1``: whole bounds match both."""
    if bound == int(bound):
        return Matcher("le", "=~", f"{int(bound)}(\\.0)?")
    return Matcher("le", "=", repr(bound))


def latency(fields: dict) -> EventsSli:
    metric = _metric(fields, "metric", ("histogram",))
    threshold = _number(fields, "threshold")
    if "buckets" in fields:
        buckets = fields["buckets"]
        if not isinstance(buckets, list) or not buckets or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in buckets
        ):
            raise FieldError("buckets", "expected a list of bucket bounds in seconds")
        bounds = tuple(float(b) for b in buckets)
    elif metric.name in HISTOGRAM_BUCKETS:
        bounds = HISTOGRAM_BUCKETS[metric.name]
    else:
        raise FieldError("buckets", f"the bucket bounds of {metric.name} are not known: list them in buckets")
    if threshold not in bounds:
        listed = ", ".join(f"{b:g}" for b in bounds)
        raise FieldError("threshold", f"{threshold:g} is not a bucket bound of {metric.name} ({listed})")
    matchers = _filter(fields, metric)
    count, bucket = Selector(metric.count, matchers), Selector(metric.bucket, matchers)
    fast = bucket.with_matchers(le_matcher(threshold))
    labels = promql.series_labels(count)
    # Every request moves the count and the +Inf bucket; a fast one also the threshold's bucket.
    series = (promql.series_text(metric.count, labels), promql.series_text(metric.bucket, {**labels, "le": "+Inf"}))
    inputs = CounterInputs(
        good=(*series, promql.series_text(metric.bucket, {**labels, "le": repr(threshold)})), bad=series
    )
    return EventsSli(f"{_sum_rate(count)} - {_sum_rate(fast)}", _sum_rate(count), "rate", inputs)


def gauge_threshold(fields: dict) -> EventsSli:
    metric = _metric(fields, "metric", ("gauge",))
    presence = _metric({"presence": fields.get("presence") or metric.name}, "presence", ("gauge",))
    limit = _number(fields, "max")
    matchers = _filter(fields, metric)
    _check_labels(presence, matchers, "filter")
    gauge, present = Selector(metric.name, matchers), Selector(presence.name, matchers)
    labels = promql.series_labels(gauge)
    inputs = SliceInputs(
        presence=promql.series_text(presence.name, labels),
        gauge=promql.series_text(metric.name, labels),
        good_value=limit / 10 if limit > 0 else limit - 1,
        bad_value=limit * 2 if limit > 0 else limit + 1,
    )
    bad = f"max({gauge}) > bool {limit:g}"
    return EventsSli(
        f"sum_over_time(({bad})[{W}:{SLICE}])",
        f"count_over_time(max({present})[{W}:{SLICE}])",
        "count",
        inputs,
        slice_expr=f"({bad})\nor on ()\n  max({present}) * 0",
    )


#: Template name -> (fields it takes, builder).
TEMPLATES: dict[str, tuple[tuple[str, ...], Callable[[dict], EventsSli]]] = {
    "availability": (("metric", "filter", "status_label", "bad", "good"), availability),
    "latency": (("metric", "filter", "threshold", "buckets"), latency),
    "counters": (("bad", "total"), counters),
    "gauge_threshold": (("metric", "filter", "max", "presence"), gauge_threshold),
}


def build(kind: str, fields: dict[str, Any]) -> EventsSli:
    return TEMPLATES[kind][1](fields)
