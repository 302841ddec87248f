"""OpenSLO ``SLO`` objects into medobs specs: ``medobs slo import-openslo`` writes the spec, and
every command that reads specs reads OpenSLO objects in a spec file through the same conversion.

Supported, as the OpenSLO v1 specification defines them:

- ``SLO`` with an inline ``indicator`` or an ``indicatorRef`` to an ``SLI`` in the same file;
- ``ratioMetric`` with ``good`` + ``total`` (bad = total - good), ``bad`` + ``total``, or ``raw``
  with ``rawType`` (``failure`` as is, ``success`` as 1 - ratio); ``counter: true`` series are
  read with ``rate()``, gauges (``counter: false``) summed over one-minute slices;
- Prometheus metric sources (``type: Prometheus``, or a ``metricSourceRef`` to a Prometheus
  ``DataSource``) with the query in ``spec.query``: a series selector, ``sum(selector)``, or any
  query already using ``{{.window}}`` (as Sloth's OpenSLO examples do);
- one rolling ``timeWindow`` of 7d, 28d or 30d (1w, 4w accepted), ``budgetingMethod:
  Occurrences``, and ``objectives`` with ``target`` or ``targetPercent`` (one SLO each).

OpenSLO ``v1alpha`` (the version Sloth reads) the same way: ``objectives[].ratioMetrics`` with
``good`` / ``bad`` + ``total`` queries (``source: prometheus``), one ``timeWindows`` entry of
``count`` + ``unit`` (``Day`` or ``Week``) adding up to 7, 28 or 30 days.

Anything else (``thresholdMetric``, calendar windows, time-slice budgeting, other data sources) is
refused in one line naming the field; ``alertPolicies`` are left out (medobs generates the SRE
Workbook's burn-rate alerts) and said so on stderr by import-openslo.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from medobs.core.output import to_yaml
from slo import promql, spec, windows
from slo.spec import Document, join

API_VERSION = "openslo/v1"
ALPHA_VERSION = "openslo/v1alpha"
_PERIODS = {"1w": "7d", "4w": "28d", **{p: p for p in windows.PERIODS}}
#: v1alpha ``timeWindows[].unit`` in days.
_UNIT_DAYS = {"Day": 1, "Week": 7}
_AGGREGATED = re.compile(r"^\s*(sum(?:\s+by\s*\([^)]*\))?)\s*\((.*)\)\s*$", re.S)


class Converter:
    """The OpenSLO objects of one file; with ``others``, documents of other formats are skipped
    (a spec file may mix them), without, they are refused."""

    def __init__(self, objects: list[Any], source: str, *, others: bool = False):
        self.source = source
        self.objects = objects
        self.others = others
        self.multi = len(self.objects) > 1
        self.notes: list[str] = []

    def doc(self, index: int) -> Document:
        return Document(self.source, index if self.multi else None)

    def _named(self, kind: str) -> dict[str, tuple[int, dict]]:
        found = {}
        for index, item in enumerate(self.objects):
            if isinstance(item, dict) and item.get("kind") == kind:
                name = (item.get("metadata") or {}).get("name")
                if name:
                    found[str(name)] = (index, item)
        return found

    def convert(self) -> list[dict[str, Any]]:
        """Our spec documents, one per service."""
        services: dict[str, list[dict]] = {}
        for index, item in enumerate(self.objects):
            if self.others and not spec.is_openslo(item):
                continue
            doc = self.doc(index)
            node = doc.mapping(item, "", ("apiVersion", "kind", "metadata", "spec"), ("apiVersion", "kind"))
            if node["apiVersion"] not in (API_VERSION, ALPHA_VERSION):
                raise doc.fail("apiVersion", f"{node['apiVersion']!r} is not supported; "
                                             f"expected {API_VERSION!r} or {ALPHA_VERSION!r}")
            if node["kind"] != "SLO":
                continue
            convert = self._slo if node["apiVersion"] == API_VERSION else self._alpha_slo
            service, slos = convert(doc, node)
            services.setdefault(service, []).extend(slos)
        if not services:
            raise spec.SpecError(f"{self.source}: no kind: SLO object in the file")
        return [{"version": spec.VERSION, "service": s, "slos": slos} for s, slos in services.items()]

    def _head(self, doc: Document, node: dict, fields: tuple[str, ...]) -> tuple[str, str, dict, str]:
        """Service, name, spec body and description of an SLO object (either version)."""
        metadata = doc.mapping(node.get("metadata"), "metadata", ("name", "displayName", "labels", "annotations"), ("name",))
        body = doc.mapping(node.get("spec"), "spec", fields, ("service", "objectives"))
        name = doc.name(metadata["name"], "metadata.name")
        if body.get("alertPolicies"):
            self.notes.append(f"{name}: alertPolicies are not converted; medobs generates burn-rate alerts")
        method = body.get("budgetingMethod", "Occurrences")
        if method != "Occurrences":
            raise doc.fail("spec.budgetingMethod", f"{method!r} is not supported: medobs SLOs count occurrences")
        description = doc.text(body.get("description") or metadata.get("displayName"), "spec.description")
        return doc.name(body["service"], "spec.service"), name, body, description

    def _slo(self, doc: Document, node: dict) -> tuple[str, list[dict]]:
        """An openslo/v1 SLO: one indicator, one medobs SLO per objective."""
        service, name, body, description = self._head(doc, node, (
            "description", "service", "indicator", "indicatorRef", "timeWindow", "budgetingMethod", "objectives",
            "alertPolicies",
        ))
        period = self._period(doc, body.get("timeWindow"))
        queries = self._indicator(doc, body)
        objective_fields = ("displayName", "target", "targetPercent", "op", "value", "timeSliceTarget", "timeSliceWindow")
        return service, self._objectives(doc, name, body, period, description, objective_fields, lambda *_: queries)

    def _alpha_slo(self, doc: Document, node: dict) -> tuple[str, list[dict]]:
        """An openslo/v1alpha SLO: each objective has its own ``ratioMetrics``."""
        service, name, body, description = self._head(doc, node, (
            "description", "service", "indicator", "timeWindows", "budgetingMethod", "objectives", "alertPolicies",
        ))
        if body.get("indicator") is not None:
            raise doc.fail("spec.indicator", "thresholdMetric indicators are not supported: medobs SLIs are ratios "
                                             "(objectives[].ratioMetrics)")
        period = self._alpha_period(doc, body.get("timeWindows"))
        objective_fields = ("displayName", "target", "op", "value", "timeSliceTarget", "ratioMetrics")
        return service, self._objectives(doc, name, body, period, description, objective_fields, self._alpha_ratio)

    def _objectives(self, doc: Document, name: str, body: dict, period: str, description: str,
                    allowed: tuple[str, ...], sli_of: Callable[[Document, dict, str], dict]) -> list[dict]:
        objectives = body["objectives"]
        if not isinstance(objectives, list) or not objectives:
            raise doc.fail("spec.objectives", "expected a list of objectives")
        slos = []
        for i, objective in enumerate(objectives):
            path = f"spec.objectives[{i}]"
            fields = doc.mapping(objective, path, allowed)
            if "op" in fields or "value" in fields:
                raise doc.fail(join(path, "op"), "threshold objectives need a thresholdMetric, which is not supported")
            suffix = fields.get("displayName") or (str(i + 1) if len(objectives) > 1 else "")
            slo_name = f"{name}-{_slug(str(suffix))}" if suffix and len(objectives) > 1 else name
            entry: dict[str, Any] = {"name": slo_name, "objective": _percent(doc, fields, path), "period": period}
            if description:
                entry["description"] = description
            entry["sli"] = sli_of(doc, fields, path)
            slos.append(entry)
        return slos

    def _period(self, doc: Document, value: Any) -> str:
        if value is None:
            return spec.DEFAULT_PERIOD
        if not isinstance(value, list) or len(value) != 1:
            raise doc.fail("spec.timeWindow", "expected exactly one time window")
        window = doc.mapping(value[0], "spec.timeWindow[0]", ("duration", "isRolling", "calendar"), ("duration",))
        _rolling(doc, window, "spec.timeWindow[0]")
        duration = str(window["duration"])
        if duration not in _PERIODS:
            raise doc.fail("spec.timeWindow[0].duration", f"{duration!r} is not one of {', '.join(_PERIODS)}")
        return _PERIODS[duration]

    def _alpha_period(self, doc: Document, value: Any) -> str:
        if value is None:
            return spec.DEFAULT_PERIOD
        if not isinstance(value, list) or len(value) != 1:
            raise doc.fail("spec.timeWindows", "expected exactly one time window")
        path = "spec.timeWindows[0]"
        window = doc.mapping(value[0], path, ("count", "unit", "isRolling", "calendar"), ("count", "unit"))
        _rolling(doc, window, path)
        count, unit = window["count"], window["unit"]
        if isinstance(count, bool) or not isinstance(count, int) or unit not in _UNIT_DAYS:
            raise doc.fail(path, f"expected a whole count of {' or '.join(_UNIT_DAYS)}, got {count!r} {unit!r}")
        period = f"{count * _UNIT_DAYS[unit]}d"
        if period not in windows.PERIODS:
            raise doc.fail(path, f"{count} {unit} is not one of {', '.join(windows.PERIODS)}")
        return period

    def _indicator(self, doc: Document, body: dict) -> dict[str, Any]:
        if body.get("indicator") is not None:
            sli = doc.mapping(body["indicator"], "spec.indicator", ("metadata", "spec"), ("spec",))
            return self._sli(doc, sli["spec"], "spec.indicator.spec")
        reference = body.get("indicatorRef")
        if not reference:
            raise doc.fail("spec", "needs an indicator or an indicatorRef")
        named = self._named("SLI")
        if reference not in named:
            raise doc.fail("spec.indicatorRef", f"no kind: SLI named {reference!r} in {self.source}")
        index, sli = named[reference]
        sli_doc = self.doc(index)
        body = sli_doc.mapping(sli.get("spec"), "spec", ("description", "thresholdMetric", "ratioMetric"))
        return self._sli(sli_doc, body, "spec")

    def _sli(self, doc: Document, value: Any, path: str) -> dict[str, Any]:
        node = doc.mapping(value, path, ("description", "thresholdMetric", "ratioMetric"))
        if node.get("thresholdMetric") is not None:
            raise doc.fail(join(path, "thresholdMetric"), "is not supported: medobs SLIs are ratios (ratioMetric)")
        path = join(path, "ratioMetric")
        ratio = doc.mapping(node.get("ratioMetric"), path, ("counter", "good", "bad", "total", "raw", "rawType"))
        if ratio.get("raw") is not None:
            query = self._window_query(doc, ratio["raw"], join(path, "raw"), counter=False, average=True)
            raw_type = ratio.get("rawType")
            if raw_type not in ("success", "failure"):
                raise doc.fail(join(path, "rawType"), "expected success or failure with raw")
            return {"raw": {"error_ratio_query": query if raw_type == "failure" else f"1 - ({query})"}}
        return _events(doc, ratio, path, ratio.get("counter", True), self._window_query)

    def _alpha_ratio(self, doc: Document, objective: dict, path: str) -> dict[str, Any]:
        path = join(path, "ratioMetrics")
        ratio = doc.mapping(objective.get("ratioMetrics"), path, ("counter", "incremental", "good", "bad", "total"))
        return _events(doc, ratio, path, ratio.get("counter", ratio.get("incremental", True)), _alpha_query)

    def _window_query(self, doc: Document, value: Any, path: str, *, counter: bool, average: bool = False) -> str:
        metric = doc.mapping(value, path, ("metricSource",), ("metricSource",))
        source_path = join(path, "metricSource")
        source = doc.mapping(metric["metricSource"], source_path, ("metricSourceRef", "type", "spec"), ("spec",))
        kind = source.get("type")
        if kind is None and source.get("metricSourceRef"):
            named = self._named("DataSource").get(str(source["metricSourceRef"]))
            kind = ((named[1].get("spec") or {}).get("type")) if named else None
            if kind is None:
                raise doc.fail(join(source_path, "metricSourceRef"), "names no DataSource with a type in this file")
        if str(kind).lower() != "prometheus":
            raise doc.fail(join(source_path, "type"), f"{kind!r} is not supported: only Prometheus")
        fields = doc.mapping(source["spec"], join(source_path, "spec"), ("query",), ("query",))
        query_path = join(source_path, "spec.query")
        return _shaped(doc, doc.text(fields["query"], query_path).strip(), query_path, counter=counter, average=average)


def _rolling(doc: Document, window: dict, path: str) -> None:
    if "calendar" in window or window.get("isRolling") is False:
        raise doc.fail(path, "calendar-aligned windows are not supported: medobs SLOs roll "
                             "(use `medobs slo report --month` for calendar months)")


def _events(doc: Document, ratio: dict, path: str, counter: Any, query_of: Callable[..., str]) -> dict[str, Any]:
    """Error and total queries of a good / bad + total ratio (error = total - good)."""
    if not isinstance(counter, bool):
        raise doc.fail(join(path, "counter"), "expected true or false")
    if ratio.get("total") is None or (ratio.get("good") is None) == (ratio.get("bad") is None):
        raise doc.fail(path, "expected total and exactly one of good or bad")
    total = query_of(doc, ratio["total"], join(path, "total"), counter=counter)
    if ratio.get("bad") is not None:
        error = query_of(doc, ratio["bad"], join(path, "bad"), counter=counter)
    else:
        good = query_of(doc, ratio["good"], join(path, "good"), counter=counter)
        error = f"({total}) - ({good})"
    return {"events": {"error_query": error, "total_query": total}}


def _alpha_query(doc: Document, value: Any, path: str, *, counter: bool) -> str:
    """A v1alpha metric: ``source: prometheus``, ``queryType: promql``, ``query``."""
    metric = doc.mapping(value, path, ("source", "queryType", "query", "metadata"), ("query",))
    source = str(metric.get("source", "prometheus"))
    if source.lower() != "prometheus":
        raise doc.fail(join(path, "source"), f"{source!r} is not supported: only prometheus")
    if str(metric.get("queryType", "promql")).lower() != "promql":
        raise doc.fail(join(path, "queryType"), f"{metric['queryType']!r} is not supported: only promql")
    query_path = join(path, "query")
    return _shaped(doc, doc.text(metric["query"], query_path).strip(), query_path, counter=counter)


def _shaped(doc: Document, query: str, path: str, *, counter: bool, average: bool = False) -> str:
    """``query`` over ``{{.window}}``: as written when it has the window; a counter selector (or
    its sum) as a rate, a gauge summed over one-minute slices, a ratio averaged."""
    if promql.has_window(query):
        return query
    if average:
        return f"avg_over_time(({query})[{{{{.window}}}}:1m])"
    if not counter:
        return f"sum_over_time((sum({query}))[{{{{.window}}}}:1m])"
    aggregated = _AGGREGATED.match(query)
    inner = aggregated.group(2) if aggregated else query
    try:
        selector = promql.parse_selector(inner)
    except ValueError:
        raise doc.fail(path, "a counter query must be a series selector, sum(selector), or use {{.window}}") from None
    grouping = aggregated.group(1) if aggregated else "sum"
    return f"{grouping}(rate({selector}[{{{{.window}}}}]))"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "objective"


def _percent(doc: Document, fields: dict, path: str) -> float:
    given = [k for k in ("target", "targetPercent") if fields.get(k) is not None]
    if len(given) != 1:
        raise doc.fail(path, "expected exactly one of target or targetPercent")
    (key,) = given
    try:
        value = Decimal(str(fields[key]))
    except InvalidOperation:
        raise doc.fail(join(path, key), f"expected a number, got {fields[key]!r}") from None
    percent = value * 100 if key == "target" else value
    if not 0 < percent < 100:
        raise doc.fail(join(path, key), f"{fields[key]} is outside the (0, {'1' if key == 'target' else '100'}) range")
    return float(percent.normalize())


def specs(documents: list[Any], source: str) -> list[spec.Spec]:
    """The specs the OpenSLO objects among a spec file's ``documents`` convert to (spec.load)."""
    converted = Converter(documents, source, others=True).convert()
    multi = len(converted) > 1

    def note(document: dict) -> str:  # several services: say which converted spec
        return f" (converted from OpenSLO, service {document['service']})" if multi else " (converted from OpenSLO)"

    return [spec.parse(document, source, note=note(document)) for document in converted]


def convert(path: Path) -> tuple[str, list[str]]:
    """The converted spec file text (checked by the spec reader) and notes for stderr."""
    converter = Converter(spec.read_documents(path, str(path)), str(path))
    documents = converter.convert()
    for index, document in enumerate(documents):
        spec.parse(document, str(path), index if len(documents) > 1 else None, " (converted)")
    bodies = [to_yaml(document, source=str(path), sort_keys=False).split("\n", 1)[1] for document in documents]
    header = f"# Converted from {path} by `medobs slo import-openslo`.\n"
    return header + "---\n".join(bodies), converter.notes
