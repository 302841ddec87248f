"""``medobs slo lint``: does every series selector of every SLO's queries select series on a real
Prometheus? A misspelled error query otherwise returns nothing, the rules count that as no
errors, and the SLO looks perfect (docs/slo-formats.md).

For each selector, over the last ``lookback``:

- it selects series: fine;
- no series has its metric name: an error (a misspelled or missing metric);
- the metric has series, but none has a label the selector needs: an error (a misspelled label);
- the metric and labels exist, but no series has the values asked for: an error in a total
  query; in an error query a warning only, since a counter labelled ``code="500"`` appears with
  the first error (a healthy service may have none yet).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from promql_parser import MatchOp, VectorSelector

from medobs.core import promql
from medobs.core.prometheus import Prometheus, QueryError
from slo import promql as slo_promql
from slo.spec import SLO
from slo.templates import RawSli

#: What ``{{.window}}`` becomes before the queries are parsed (any valid range would do).
_WINDOW = "5m"


@dataclass(frozen=True)
class Finding:
    """One selector that selects nothing (``error`` False: a warning)."""

    slo: SLO
    query: str  # the field: error_query, total_query or error_ratio_query
    selector: str
    problem: str
    error: bool = True

    def line(self) -> str:
        kind = "error" if self.error else "warning"
        return f"{kind}: {self.slo.source}: SLO {self.slo.key}: {self.query}: {self.selector} {self.problem}"


@dataclass(frozen=True)
class Result:
    findings: list[Finding]
    slos: int
    selectors: int

    @property
    def errors(self) -> int:
        return sum(finding.error for finding in self.findings)

    def summary(self) -> str:
        counted = f"{_count(self.slos, 'SLO')}, {_count(self.selectors, 'series selector')}"
        if not self.findings:
            return f"{counted}: every selector matches series"
        warnings = len(self.findings) - self.errors
        return f"{counted}: {_count(self.errors, 'error')}, {_count(warnings, 'warning')}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def queries(slo: SLO) -> list[tuple[str, str]]:
    """``(field, query)`` of the SLO's SLI, as the spec names the fields."""
    if isinstance(slo.sli, RawSli):
        return [("error_ratio_query", slo.sli.error_ratio_query)]
    return [("error_query", slo.sli.error_query), ("total_query", slo.sli.total_query)]


def selector_text(selector: VectorSelector) -> str:
    """The selector as a ``match[]`` argument: name and matchers, without offset or ``@``."""
    matchers = [
        f"{m.name}{promql.operator(m.op)}{json.dumps(m.value, ensure_ascii=False)}"
        for m in selector.matchers.matchers if not (selector.name and m.name == "__name__")
    ]
    return f"{selector.name or ''}{{{', '.join(matchers)}}}"


def _needs_label(op: MatchOp, value: str) -> bool:
    """Whether a matcher only matches series that carry its label (``x=""`` matches those without)."""
    if op == MatchOp.Equal:
        return value != ""
    if op == MatchOp.Re:
        try:
            return re.fullmatch(value, "") is None
        except re.error:  # RE2 syntax Python lacks: assume it needs the label
            return True
    return False


class Linter:
    """Checks selectors against one Prometheus over ``[end - lookback, end]``; each selector once."""

    def __init__(self, prometheus: Prometheus, start: float, end: float, lookback: str):
        self.prometheus = prometheus
        self.start, self.end, self.lookback = start, end, lookback
        self.checked: dict[tuple[str, bool], tuple[str, bool] | None] = {}

    def problem(self, selector: VectorSelector, in_error_query: bool) -> tuple[str, bool] | None:
        """What is wrong with a selector (the problem, whether it is an error), or None."""
        text = selector_text(selector)
        key = (text, in_error_query)
        if key not in self.checked:
            self.checked[key] = self._problem(selector, text, in_error_query)
        return self.checked[key]

    def _problem(self, selector: VectorSelector, text: str, in_error_query: bool) -> tuple[str, bool] | None:
        try:
            if self.prometheus.series(text, self.start, self.end):
                return None
        except QueryError as error:
            return f"is refused by Prometheus: {error.reason}", True
        name = promql.metric_name(selector)
        if name is None:
            return f"matches no series in the last {self.lookback}", True
        labels = set(self.prometheus.api("/api/v1/labels", {
            "match[]": f"{{__name__={json.dumps(name)}}}", "start": self.start, "end": self.end}, method="POST"))
        if not labels:
            return f"matches no series: no metric named {name} in the last {self.lookback}", True
        for matcher in selector.matchers.matchers:
            if matcher.name not in labels and _needs_label(matcher.op, matcher.value):
                known = ", ".join(sorted(labels - {"__name__"}))
                return f"matches no series: no series of {name} has the label {matcher.name} (it has: {known})", True
        if in_error_query:
            return (f"matches no series in the last {self.lookback}: no error counted yet, "
                    f"or a label value is misspelled", False)
        return f"matches no series in the last {self.lookback}: no series of {name} has these label values", True


def lint(slos: Iterable[SLO], linter: Linter) -> Result:
    """Every selector of every SLO's queries checked; an unparsable query is an error too."""
    findings: list[Finding] = []
    count = 0
    slos = list(slos)
    for slo in slos:
        for field, query in queries(slo):
            try:
                tree = promql.parse(slo_promql.at_window(query, _WINDOW))
            except ValueError as error:
                findings.append(Finding(slo, field, query, f"is not valid PromQL: {error}"))
                continue
            for selector in promql.selectors(tree):
                count += 1
                problem = linter.problem(selector, field == "error_query")
                if problem:
                    findings.append(Finding(slo, field, selector_text(selector), *problem))
    return Result(findings, len(slos), count)
