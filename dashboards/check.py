"""``medobs dashboards check``: run every panel's queries against a Prometheus and explain the
empty ones.

Variables get real values from Prometheus (``label_values(...)`` asked through the label-values
API, every value selected, as "All" would; a variable whose "All" matches series without its
label, such as ``cluster``, gets that "All" when Prometheus has no values, as Grafana does),
built-in ranges get ``--rate-interval`` and the checked window. Every query of a panel must return data: each one that does not gets its
reasons (the metric is absent, a label matcher matches none of its series, with the values that
do exist, a variable has no values, or the series exist but the expression drops them all or
returns only NaN, which draws nothing), and one such query makes the panel empty. GPU queries
on machines without a GPU (``medobs_gpu_info`` has no series) are reported as such and do not
fail the check, unless a GPU is expected.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from promql_parser import Matcher, MatchOp

from dashboards import variables
from dashboards.model import Board, queries, variable_query
from medobs import UserError
from medobs.core import catalog, durations, promql
from medobs.core.catalog import gpu
from medobs.core.prometheus import Prometheus, QueryError
from medobs.core.runtime import safe_url

Status = Literal["ok", "empty", "no-gpu"]
GPU_SOURCES = {"medobs-gpu", "dcgm-exporter"}
#: Points per range query, as a Grafana panel of ordinary width asks for.
POINTS = 100
_REGEX_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")
_SHOWN_VALUES = 8
#: Why a query whose series hold only NaN draws nothing (Grafana shows no points for NaN).
ONLY_NAN = "it returns only NaN, which draws nothing: a ratio with nothing to divide (0/0, no traffic in the window)"


@dataclass(frozen=True)
class Reason:
    kind: Literal["absent", "labels", "expression", "variable", "error", "no-gpu"]
    message: str
    #: The panel query without data: its refId and legend, as in "B ({{pool}} p99)".
    query: str = ""


@dataclass
class PanelResult:
    dashboard: str
    uid: str
    panel: str
    status: Status = "ok"
    reasons: list[Reason] = field(default_factory=list)


def panel_values(prometheus: Prometheus, expr: str, start: float, end: float, instant: bool) -> list[float]:
    """Every value ``expr`` returns over the window (NaN included), as the panel would draw it."""
    if instant:
        return [float(series["value"][1]) for series in prometheus.query(expr, end)]
    result = prometheus.query_range(expr, start, end, (end - start) / POINTS)
    return [float(value) for series in result for _, value in series["values"]]


def regex_of(values: Sequence[str]) -> str:
    """The values as one alternation, escaped for a regex inside a PromQL string (Grafana's "All")."""
    escaped = [_REGEX_SPECIAL.sub(r"\\\1", value) for value in values]
    return "|".join(escaped).replace("\\", "\\\\").replace('"', '\\"')


@dataclass
class Window:
    start: float
    end: float
    label: str
    rate_interval: str

    @property
    def builtins(self) -> dict[str, str]:
        seconds = int(self.end - self.start)
        return {
            "__rate_interval": self.rate_interval,
            "__interval": f"{max(1, seconds // POINTS)}s",
            "__range": f"{seconds}s",
        }


def resolve_variables(board: Board, prometheus: Prometheus, window: Window) -> tuple[dict[str, str], dict[str, str]]:
    """Values for the board's variables (as regex alternations) and, by name, why some have none."""
    values = dict(window.builtins)
    problems: dict[str, str] = {}
    for variable in board.variables:
        name, kind = str(variable.get("name")), variable.get("type")
        text = variable_query(variable)
        upstream = [problems[v] for v in variables.variables_in(text) if v in problems]
        if upstream:
            problems[name] = upstream[0]  # the root cause, once
        elif kind == "query":
            found = _query_values(text, values, prometheus, window)
            if found:
                values[name] = regex_of(found)
            elif _all_matches_unlabelled(variable):
                # Grafana selects "All" when the query finds nothing, and this "All" also matches
                # series without the label (the cluster variable in a single-cluster Prometheus).
                values[name] = str(variable["allValue"])
            else:
                problems[name] = f"variable ${name} has no values: {variables.substitute(text, values)} found none"
        elif kind == "custom":
            values[name] = regex_of([v.strip() for v in text.split(",") if v.strip()])
        elif kind in ("constant", "textbox"):
            values[name] = text
    return values, problems


def _all_matches_unlabelled(variable: dict[str, Any]) -> bool:
    """Whether the variable's "All" option matches the empty value, i.e. series without its label."""
    all_value = variable.get("allValue")
    if not variable.get("includeAll") or not isinstance(all_value, str):
        return False
    try:
        return re.fullmatch(all_value, "") is not None
    except re.error:
        return False


def _query_values(text: str, values: dict[str, str], prometheus: Prometheus, window: Window) -> list[str]:
    parsed = variables.label_values(variables.substitute(text, values))
    if parsed is None:
        raise UserError(f"variable query {text!r} is not label_values(...): the check cannot resolve it")
    selector, label = parsed
    try:
        return prometheus.label_values(label, selector, window.start, window.end)
    except QueryError:
        return []


def _matches(matcher: Matcher, labels: dict[str, str]) -> bool:
    value = labels.get(matcher.name, "")
    if matcher.op in (MatchOp.Equal, MatchOp.NotEqual):
        return (value == matcher.value) == (matcher.op == MatchOp.Equal)
    try:
        found = re.fullmatch(matcher.value, value) is not None
    except re.error:
        return False
    return found == (matcher.op == MatchOp.Re)


def _shown(matcher: Matcher) -> str:
    operators = ((MatchOp.Equal, "="), (MatchOp.NotEqual, "!="), (MatchOp.Re, "=~"), (MatchOp.NotRe, "!~"))
    operator = next(text for op, text in operators if op == matcher.op)
    return f'{matcher.name}{operator}"{matcher.value}"'


def diagnose(expr: str, prometheus: Prometheus, window: Window) -> list[Reason]:
    """Why ``expr`` returns nothing: per selector, an absent metric or labels that match no series."""
    reasons: list[Reason] = []
    for selector in promql.selectors(promql.parse(expr)):
        name = promql.metric_name(selector)
        if name is None:
            continue
        series = prometheus.series(f'{{__name__="{name}"}}', window.start, window.end)
        if not series:
            source = catalog.lookup(name)
            origin = f" (exposed by {source.source})" if source else ""
            reasons.append(Reason("absent", f"metric {name}{origin} is absent: no series in the last {window.label}"))
            continue
        matchers = [m for m in selector.matchers.matchers if m.name != "__name__"]
        failing = [m for m in matchers if not any(_matches(m, s) for s in series)]
        for matcher in failing:
            seen = sorted({s.get(matcher.name, "") for s in series})
            listed = ", ".join(v or '""' for v in seen[:_SHOWN_VALUES]) + (" ..." if len(seen) > _SHOWN_VALUES else "")
            reasons.append(Reason(
                "labels", f"labels do not match: no series of {name} has {_shown(matcher)} ({matcher.name}: {listed})",
            ))
        if not failing and not any(all(_matches(m, s) for m in matchers) for s in series):
            together = ", ".join(_shown(m) for m in matchers)
            reasons.append(Reason("labels", f"labels do not match: no series of {name} has {together} together"))
    if not reasons:
        reasons.append(Reason(
            "expression", "its series exist, but the expression returns nothing (a join, filter or range drops them)",
        ))
    return list(dict.fromkeys(reasons))


def _is_gpu_query(query: dict[str, Any]) -> bool:
    """Whether every metric the query reads comes from a GPU exporter."""
    try:
        tree = variables.parse_template(query["expr"])
    except ValueError:
        return False
    entries = [catalog.lookup(promql.metric_name(s) or "") for s in promql.selectors(tree)]
    return bool(entries) and all(e is not None and e.source in GPU_SOURCES for e in entries)


def _label(query: dict[str, Any]) -> str:
    """How a report names a panel query: its refId, and its legend when it has one."""
    legend = query.get("legendFormat")
    return f"{query.get('refId', '?')} ({legend})" if legend else str(query.get("refId", "?"))


def _query_reasons(
    query: dict[str, Any], values: dict[str, str], problems: dict[str, str], prometheus: Prometheus, window: Window,
) -> list[Reason]:
    """Why one panel query draws nothing over the window; [] when it has data."""
    missing = [problems[v] for v in variables.variables_in(query["expr"]) if v in problems]
    if missing:
        return [Reason("variable", message) for message in missing]
    expr = variables.substitute(query["expr"], values)
    try:
        found = panel_values(prometheus, expr, window.start, window.end, bool(query.get("instant")))
        if any(not math.isnan(value) for value in found):
            return []
        return [Reason("expression", ONLY_NAN)] if found else diagnose(expr, prometheus, window)
    except QueryError as error:
        return [Reason("error", f"Prometheus rejected {expr!r}: {error.reason}")]
    except ValueError as error:
        return [Reason("error", f"invalid PromQL {expr!r}: {error}")]


def check_panel(
    board: Board, panel: dict[str, Any], values: dict[str, str], problems: dict[str, str],
    prometheus: Prometheus, window: Window, excuse_gpu: bool,
) -> PanelResult:
    """The panel is ok when every query has data; ``excuse_gpu``: a GPU query without data is "no GPU"."""
    result = PanelResult(board.title, board.uid, str(panel.get("title", "")))
    statuses: set[Status] = set()
    for query in queries(panel):
        reasons = _query_reasons(query, values, problems, prometheus, window)
        if not reasons:
            continue
        if excuse_gpu and _is_gpu_query(query):
            reasons = [Reason("no-gpu", f"no GPU here: {gpu.INFO.name} has no series in the last {window.label}")]
            statuses.add("no-gpu")
        else:
            statuses.add("empty")
        result.reasons += [replace(reason, query=_label(query)) for reason in dict.fromkeys(reasons)]
    result.status = "empty" if "empty" in statuses else "no-gpu" if statuses else "ok"
    return result


def check(
    boards: Sequence[Board], prometheus: Prometheus, window: Window, expect_gpu: bool = False,
) -> list[PanelResult]:
    """Every panel of ``boards``; GPU queries without data are "no GPU" on a machine without a GPU,
    unless ``expect_gpu``, which makes them empty like any other."""
    excuse_gpu = not expect_gpu and not prometheus.series(gpu.INFO.name, window.start, window.end)
    results = []
    for board in boards:
        values, problems = resolve_variables(board, prometheus, window)
        results += [
            check_panel(board, panel, values, problems, prometheus, window, excuse_gpu) for panel in board.panels()
        ]
    return results


def window_of(duration: str, rate_interval: str) -> Window:
    """The last ``duration`` up to now; UserError when either is not a Prometheus duration."""
    for flag, value in (("--range", duration), ("--rate-interval", rate_interval)):
        try:
            durations.parse(value)
        except ValueError:
            raise UserError(f"{flag} {value!r} is not a duration like 30s, 5m or 1h") from None
    end = time.time()
    return Window(end - durations.parse(duration), end, duration, rate_interval)


def summary(results: Sequence[PanelResult]) -> dict[str, int]:
    counts = {"panels": len(results), "ok": 0, "empty": 0, "no-gpu": 0}
    for result in results:
        counts[result.status] += 1
    return counts


def as_json(results: Sequence[PanelResult], prometheus_url: str, window: Window) -> dict[str, Any]:
    return {
        "prometheus": safe_url(prometheus_url),
        "window": window.label,
        "summary": summary(results),
        "panels": [asdict(r) for r in results],
    }
