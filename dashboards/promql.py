"""PromQL as the dashboards use it: Grafana variables in, a parsed expression out.

Grafana expands ``$var`` / ``${var}`` / ``[[var]]`` before a query reaches Prometheus, so an
expression is parsed (with the real PromQL grammar of ``promql-parser``) only after
:func:`substitute` has put values in. For lint, :func:`parse_template` puts in placeholder
durations, remembering which one stands for ``$__rate_interval``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta

import promql_parser
from promql_parser import (
    AggregateExpr,
    BinaryExpr,
    Call,
    MatrixSelector,
    ParenExpr,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)

_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>[a-zA-Z_]\w*)\s*\)\s*$", re.S)
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

#: Placeholder durations for Grafana's built-in range variables, distinct from anything a
#: dashboard would write, so that lint can tell ``[$__rate_interval]`` from ``[5m]``.
PLACEHOLDER_DURATIONS = {"__rate_interval": "4321s", "__interval": "4322s", "__range": "4323s"}
RATE_INTERVAL_PLACEHOLDER = timedelta(seconds=4321)


def variables_in(text: str) -> list[str]:
    """Names of the Grafana variables ``text`` uses, in order of first use."""
    names: list[str] = []
    for match in _VARIABLE.finditer(text):
        name = next(group for group in match.groups() if group)
        if name not in names:
            names.append(name)
    return names


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each variable that ``values`` names replaced (the others left as they are)."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)


def label_values(query: str) -> tuple[str | None, str] | None:
    """``(selector, label)`` of a Grafana ``label_values([selector, ]label)`` variable query, else None."""
    match = _LABEL_VALUES.match(query)
    return (match["selector"], match["label"]) if match else None


def seconds(duration: str) -> float:
    """A Prometheus duration (``90s``, ``1h30m``) in seconds; ValueError when it is not one."""
    return promql_parser.parse_duration(duration).total_seconds()


def parse(expr: str) -> promql_parser.Expr:
    """The expression's syntax tree; ValueError (the parser's message) when it is not valid PromQL."""
    return promql_parser.parse(expr)


def parse_template(expr: str) -> promql_parser.Expr:
    """Parse a dashboard query as written: built-in ranges become placeholders, ``$var`` stays
    (inside label matchers it is just text)."""
    return parse(substitute(expr, PLACEHOLDER_DURATIONS))


def _children(node: promql_parser.Expr) -> list[promql_parser.Expr]:
    if isinstance(node, BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, AggregateExpr):
        return [child for child in (node.param, node.expr) if child is not None]
    if isinstance(node, Call):
        return list(node.args)
    if isinstance(node, (ParenExpr, UnaryExpr, SubqueryExpr)):
        return [node.expr]
    if isinstance(node, MatrixSelector):
        return [node.vector_selector]
    return []


def walk(
    node: promql_parser.Expr, parents: tuple[promql_parser.Expr, ...] = ()
) -> Iterator[tuple[promql_parser.Expr, tuple[promql_parser.Expr, ...]]]:
    """Every node of the tree, depth first, with its ancestors (nearest last)."""
    yield node, parents
    for child in _children(node):
        yield from walk(child, (*parents, node))


def selectors(node: promql_parser.Expr) -> list[VectorSelector]:
    return [n for n, _ in walk(node) if isinstance(n, VectorSelector)]


def metric_name(selector: VectorSelector) -> str | None:
    """The selector's metric name, also when written as ``{__name__="x"}``."""
    if selector.name:
        return selector.name
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
            return matcher.value
    return None


def enclosing_call(parents: tuple[promql_parser.Expr, ...]) -> str | None:
    """The function a range selector is passed to (``rate`` in ``rate(x[5m])``), if any."""
    if len(parents) >= 2 and isinstance(parents[-1], MatrixSelector) and isinstance(parents[-2], Call):
        return parents[-2].func.name
    return None
