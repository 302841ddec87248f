"""``medobs dashboards lint``: grafana dashboard-linter's rules over the built dashboard JSON.

The rules keep dashboard-linter's names. Where this package is stricter: ``$__rate_interval``
is required in ``increase`` as well as ``rate`` / ``irate``; ``namespace`` / ``pod`` and
``service`` / ``slo`` count as filter pairs beside ``job`` / ``instance``; counters are known
from the metric catalog (``pg_stat_database_deadlocks`` is one although it lacks ``_total``);
every metric must be in the catalog; a board needs a stable uid and the package's tag; and a
``cluster`` variable (kubernetes-mixin's) whose "All" also matches series without the label, and
that every selector applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promql_parser import MatchOp, MatrixSelector, VectorSelector

from dashboards import variables
from dashboards.model import Board, queries, variable_query
from dashboards.panels import CLUSTER_LABEL, IN_CLUSTER, MANAGED_TAG, REFRESH_ON_TIME_RANGE_CHANGE, SCOPES
from medobs.core import catalog, promql

#: Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts), by category.
_UNITS = """
none string short percent percentunit humidity dB hex0x hex sci locale pixel
accMS2 accFS2 accG degree radian grad arcmin arcsec areaM2 areaF2 areaMI2
flops mflops gflops tflops pflops eflops zflops yflops ppm conppb conngm3 conngNm3 conμgm3 conμgNm3
conmgm3 conmgNm3 congm3 congNm3 conmgdL conmmolL
bytes decbytes bits decbits kbytes deckbytes mbytes decmbytes gbytes decgbytes tbytes dectbytes pbytes decpbytes
pps binBps Bps binbps bps KiBs Kibits KBs Kbits MiBs Mibits MBs Mbits GiBs Gibits GBs Gbits TiBs Tibits TBs
Tbits PiBs Pibits PBs Pbits
dateTimeAsIso dateTimeAsIsoNoDateIfToday dateTimeAsUS dateTimeAsUSNoDateIfToday dateTimeAsLocal
dateTimeAsLocalNoDateIfToday dateTimeAsSystem dateTimeFromNow
watt kwatt megwatt gwatt mwatt Wm2 voltamp kvoltamp voltampreact kvoltampreact watth watthperkg kwatth kwattm
amph kamph mamph joule ev amp kamp mamp volt kvolt mvolt dBm ohm kohm Mohm farad µfarad nfarad pfarad ffarad
henry mhenry µhenry lumens
flowgpm flowcms flowcfs flowcfm litreh flowlpm flowmlpm lux forceNm forcekNm forceN forcekN
Hs KHs MHs GHs THs PHs EHs massmg massg masslb masskg masst
lengthmm lengthin lengthft lengthm lengthkm lengthmi
pressurembar pressurebar pressurekbar pressurepa pressurehpa pressurekpa pressurehg pressurepsi
radbq radci radgy radrad radsv radmsv radusv radrem radexpckg radr radsvh radmsvh radusvh
rotrpm rothz rotrads rotdegs celsius fahrenheit kelvin
hertz ns µs ms s m h d dtdurationms dtdurations dthms dtdhms timeticks clockms clocks
cps ops reqps rps wps iops cpm opm rpm wpm velocityms velocitykmh velocitymph velocityknot
mlitre litre m3 Nm3 dm3 gallons bool bool_yes_no bool_on_off
currencyUSD currencyGBP currencyEUR currencyJPY currencyRUB currencyUAH currencyBRL currencyDKK currencyISK
currencyNOK currencySEK currencyCZK currencyCHF currencyPLN currencyBTC currencymBTC currencyμBTC currencyZAR
currencyINR currencyKRW currencyIDR currencyPHP currencyVND
"""
VALID_UNITS = frozenset(_UNITS.split())
#: Grafana's custom units: "suffix:img/s", "si:B" ...
CUSTOM_UNIT_PREFIXES = ("suffix:", "prefix:", "si:", "count:", "currency:", "time:", "bool:")
RATE_FUNCTIONS = ("rate", "irate", "increase")
_UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.S)
_DATASOURCE_REFERENCES = ("$datasource", "${datasource}")


@dataclass(frozen=True)
class Violation:
    path: Path
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: [{self.rule}] {self.message}"


Finding = tuple[str, str]  # (rule, message)
Rule = Callable[[Board], Iterator[Finding]]


def _where(board: Board, panel: dict[str, Any] | None = None, query: dict[str, Any] | None = None) -> str:
    place = f"dashboard {board.title!r}"
    if panel is not None:
        place += f", panel {panel.get('title', '')!r}"
    if query is not None:
        place += f", target {query.get('refId', '?')}"
    return place


def _variable(board: Board, name: str) -> dict[str, Any] | None:
    return next((v for v in board.variables if v.get("name") == name), None)


def _datasource_uid(reference: Any) -> str:
    return str(reference.get("uid", "")) if isinstance(reference, dict) else str(reference or "")


# --- dashboard rules -------------------------------------------------------------------------


def template_datasource(board: Board) -> Iterator[Finding]:
    rule = "template-datasource-rule"
    variable = _variable(board, "datasource")
    if variable is None or variable.get("type") != "datasource" or variable.get("query") != "prometheus":
        yield rule, f"{_where(board)} has no variable 'datasource' of type datasource querying prometheus"
    elif variable.get("label") != "Data source":
        yield rule, f"{_where(board)}: the datasource variable is labelled {variable.get('label')!r}, not 'Data source'"


def template_filters(board: Board) -> Iterator[Finding]:
    rule = "template-job-instance-rule"
    defined = {v.get("name") for v in board.variables}
    if not any({scope.outer, scope.inner} <= defined for scope in SCOPES):
        pairs = ", ".join(f"{s.outer} / {s.inner}" for s in SCOPES)
        yield rule, f"{_where(board)} has no pair of filter variables ({pairs})"
    for scope in SCOPES:
        for name in (scope.outer, scope.inner):
            variable = _variable(board, name)
            if variable is None:
                continue
            problems = []
            if variable.get("type") != "query":
                problems.append(f"type {variable.get('type')!r}, not query")
            if _datasource_uid(variable.get("datasource")) not in _DATASOURCE_REFERENCES:
                problems.append("does not use $datasource")
            if not variable.get("multi") or not variable.get("includeAll"):
                problems.append("not multi-select with All")
            if variable.get("allValue") != ".+":
                problems.append(f"allValue {variable.get('allValue')!r}, not '.+'")
            if variable.get("label") != name.title():
                problems.append(f"label {variable.get('label')!r}, not {name.title()!r}")
            if problems:
                yield rule, f"{_where(board)}: variable {name!r}: {'; '.join(problems)}"


def template_cluster(board: Board) -> Iterator[Finding]:
    rule = "template-cluster-rule"
    variable = _variable(board, CLUSTER_LABEL)
    if variable is None:
        yield rule, f"{_where(board)} has no variable {CLUSTER_LABEL!r}"
        return
    all_value = variable.get("allValue")
    if variable.get("type") != "query" or not variable.get("includeAll") or not isinstance(all_value, str) \
            or re.fullmatch(all_value, "") is None:
        yield rule, (
            f"{_where(board)}: variable {CLUSTER_LABEL!r} must be a query variable with All, whose allValue "
            "(.*) also matches series without the label"
        )
    if _datasource_uid(variable.get("datasource")) not in _DATASOURCE_REFERENCES:
        yield rule, f"{_where(board)}: variable {CLUSTER_LABEL!r} does not use $datasource"


def template_refresh(board: Board) -> Iterator[Finding]:
    for variable in board.variables:
        if variable.get("type") == "query" and variable.get("refresh") != REFRESH_ON_TIME_RANGE_CHANGE:
            yield (
                "template-on-time-change-reload-rule",
                f"{_where(board)}: variable {variable.get('name')!r} has refresh {variable.get('refresh')!r}, "
                f"not {REFRESH_ON_TIME_RANGE_CHANGE} (on time range change)",
            )


def template_queries(board: Board) -> Iterator[Finding]:
    for variable in board.variables:
        if variable.get("type") != "query":
            continue
        text = variable_query(variable)
        label_values = variables.label_values(text)
        query_result = _QUERY_RESULT.match(text)
        expression = label_values[0] if label_values else (query_result["expr"] if query_result else None)
        problem = None if label_values or query_result else "is neither label_values(...) nor query_result(...)"
        if expression:
            try:
                variables.parse_template(expression)
            except ValueError as error:
                problem = f"has invalid PromQL: {error}"
        if problem:
            yield "template-label-promql-rule", f"{_where(board)}: variable {variable.get('name')!r} query {text!r} {problem}"


def uneditable(board: Board) -> Iterator[Finding]:
    if board.model.get("editable", True):
        yield "uneditable-dashboard-rule", f"{_where(board)} is editable; set editable: false (code is the source)"


def stable_uid(board: Board) -> Iterator[Finding]:
    rule = "dashboard-uid-rule"
    if not _UID.match(board.uid):
        yield rule, f"{_where(board)} has uid {board.uid!r}: set a stable uid of 1-40 letters, digits, - or _"
    ids = [panel.get("id") for panel in board.model.get("panels", [])] + [
        nested.get("id") for panel in board.model.get("panels", []) for nested in panel.get("panels", [])
    ]
    if None in ids or len(set(ids)) != len(ids):
        yield rule, f"{_where(board)}: panel ids are missing or repeated"


def tags(board: Board) -> Iterator[Finding]:
    if MANAGED_TAG not in board.model.get("tags", []):
        yield "dashboard-tags-rule", f"{_where(board)} lacks the tag {MANAGED_TAG!r} (publish --prune relies on it)"


# --- panel rules -----------------------------------------------------------------------------


def _unit(panel: dict[str, Any]) -> str:
    field_config = panel.get("fieldConfig", {})
    for override in field_config.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "unit":
                return str(prop.get("value") or "")
    return str(field_config.get("defaults", {}).get("unit") or "")


def panel_rules(board: Board) -> Iterator[Finding]:
    for panel in board.panels():
        where = _where(board, panel)
        if not str(panel.get("title", "")).strip() or not str(panel.get("description") or "").strip():
            yield "panel-title-description-rule", f"{where} lacks a title or a description"
        unit = _unit(panel)
        if unit not in VALID_UNITS and not unit.startswith(CUSTOM_UNIT_PREFIXES):
            yield "panel-units-rule", f"{where} has no or an invalid unit: {unit!r}"
        if _datasource_uid(panel.get("datasource")) not in _DATASOURCE_REFERENCES:
            yield "panel-datasource-rule", f"{where} does not use the $datasource variable"
        for query in panel.get("targets", []):
            if "datasource" in query and _datasource_uid(query["datasource"]) not in _DATASOURCE_REFERENCES:
                yield "panel-datasource-rule", f"{_where(board, panel, query)} does not use the $datasource variable"
        if not queries(panel):
            yield "panel-no-targets-rule", f"{where} has no queries"


# --- target rules ----------------------------------------------------------------------------


def _is_counter_series(name: str) -> bool:
    entry = catalog.lookup(name)
    if entry is None:
        return name.endswith("_total")
    if entry.type == "counter":
        return True
    return name != entry.name  # _bucket / _sum / _count of a histogram or summary


def _filtered_by(selector: VectorSelector, *names: str) -> bool:
    """Whether the selector applies each variable of ``names`` to its label (``name=~"$name"``)."""
    references = {
        (m.name, m.value) for m in selector.matchers.matchers if m.op == MatchOp.Re
    }
    return all((name, f"${name}") in references or (name, f"${{{name}}}") in references for name in names)


def target_rules(board: Board) -> Iterator[Finding]:
    defined = {v.get("name") for v in board.variables}
    scopes = [s for s in SCOPES if {s.outer, s.inner} <= defined]
    for panel in board.panels():
        for query in queries(panel):
            where = _where(board, panel, query)
            try:
                tree = variables.parse_template(query["expr"])
            except ValueError as error:
                yield "target-promql-rule", f"{where}: invalid PromQL {query['expr']!r}: {error}"
                continue
            yield from _target_findings(where, tree, scopes, CLUSTER_LABEL in defined)


def _target_findings(where: str, tree: Any, scopes: list[Any], in_cluster: bool) -> Iterator[Finding]:
    for node, parents in promql.walk(tree):
        if isinstance(node, MatrixSelector) and parents:
            function = getattr(getattr(parents[-1], "func", None), "name", None)
            if function in RATE_FUNCTIONS and node.range != variables.RATE_INTERVAL_PLACEHOLDER:
                yield "target-rate-interval-rule", f"{where}: {function}() over {node} should use $__rate_interval"
        if not isinstance(node, VectorSelector):
            continue
        name = promql.metric_name(node)
        if name is None or catalog.lookup(name) is None:
            yield "target-metric-catalog-rule", f"{where}: {node} is not a metric of the catalog (medobs/catalog/)"
        elif _is_counter_series(name) and promql.enclosing_call(parents) not in RATE_FUNCTIONS:
            yield "target-counter-agg-rule", f"{where}: counter {name} is used outside rate() / irate() / increase()"
        if not any(_filtered_by(node, s.outer, s.inner) for s in scopes):
            pairs = " or ".join(f'{s.outer}=~"${s.outer}", {s.inner}=~"${s.inner}"' for s in scopes) or "a filter pair"
            yield "target-job-instance-rule", f"{where}: {node} lacks the matchers {pairs}"
        if in_cluster and not _filtered_by(node, CLUSTER_LABEL):
            yield "target-cluster-rule", f"{where}: {node} lacks the matcher {IN_CLUSTER}"


#: Every rule name a violation can carry.
RULE_NAMES = (
    "template-datasource-rule", "template-job-instance-rule", "template-cluster-rule", "template-on-time-change-reload-rule",
    "template-label-promql-rule", "uneditable-dashboard-rule", "dashboard-uid-rule", "dashboard-tags-rule",
    "panel-title-description-rule", "panel-units-rule", "panel-datasource-rule", "panel-no-targets-rule",
    "target-promql-rule", "target-rate-interval-rule", "target-job-instance-rule", "target-counter-agg-rule",
    "target-metric-catalog-rule", "target-cluster-rule",
)
RULES: tuple[Rule, ...] = (
    template_datasource,
    template_filters,
    template_cluster,
    template_refresh,
    template_queries,
    uneditable,
    stable_uid,
    tags,
    panel_rules,
    target_rules,
)


def lint(board: Board) -> list[Violation]:
    return [Violation(board.path, rule, message) for check in RULES for rule, message in check(board)]
