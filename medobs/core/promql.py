"""PromQL read with its real grammar (``promql-parser``): the one reader the package has.

:func:`parse` gives the syntax tree, :func:`walk` visits it with each node's ancestors, and the
rest answers what the capabilities ask of an expression: the series selectors in it, the metric
names it refers to, the function a range is passed to, a plain selector's name and matchers.
Capability-specific PromQL (Grafana variables, Sloth's ``{{.window}}``) stays in the capability.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import promql_parser
from promql_parser import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Expr,
    MatchOp,
    MatrixSelector,
    ParenExpr,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
#: PromQL's matcher operators, as written.
_OPERATORS = ((MatchOp.Equal, "="), (MatchOp.NotEqual, "!="), (MatchOp.Re, "=~"), (MatchOp.NotRe, "!~"))


def parse(expr: str) -> Expr:
    """The expression's syntax tree; ValueError (the parser's message) when it is not valid PromQL."""
    return promql_parser.parse(expr)


def _children(node: Expr) -> list[Expr]:
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


def walk(node: Expr, parents: tuple[Expr, ...] = ()) -> Iterator[tuple[Expr, tuple[Expr, ...]]]:
    """Every node of the tree, depth first, with its ancestors (nearest last)."""
    yield node, parents
    for child in _children(node):
        yield from walk(child, (*parents, node))


def selectors(node: Expr) -> list[VectorSelector]:
    """The series selectors of the tree, in order."""
    return [n for n, _ in walk(node) if isinstance(n, VectorSelector)]


def metric_name(selector: VectorSelector) -> str | None:
    """The selector's metric name, also when written as ``{__name__="x"}``."""
    if selector.name:
        return selector.name
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == MatchOp.Equal:
            return matcher.value
    return None


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression refers to; ValueError when it is not valid PromQL."""
    return {name for selector in selectors(parse(expr)) if (name := metric_name(selector))}


def enclosing_call(parents: tuple[Expr, ...]) -> str | None:
    """The function a range selector is passed to (``rate`` in ``rate(x[5m])``), if any."""
    if len(parents) >= 2 and isinstance(parents[-1], MatrixSelector) and isinstance(parents[-2], Call):
        return parents[-2].func.name
    return None


def range_functions(node: Expr) -> list[tuple[str, float]]:
    """``(function, seconds)`` for each range in the tree, a selector's ``x[5m]`` or a subquery's
    ``(...)[5m:1m]``; the function is ``""`` where the range is not a function's argument."""
    found = []
    for child, parents in walk(node):
        if isinstance(child, MatrixSelector):
            found.append((enclosing_call((*parents, child)) or "", child.range.total_seconds()))
        elif isinstance(child, SubqueryExpr):
            call = parents[-1].func.name if parents and isinstance(parents[-1], Call) else ""
            found.append((call, child.range.total_seconds()))
    return found


def plain_selector(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """``'x_total{role="dlq"}'`` -> ``("x_total", [("role", "=", "dlq")])``: the metric name and
    the other matchers (label, operator, value); ValueError on anything but a plain selector."""
    try:
        node = parse(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a series selector like name{{label=\"value\"}}: {error}") from None
    name = metric_name(node) if isinstance(node, VectorSelector) else None
    if name is None or node.offset is not None or node.at is not None:
        raise ValueError(f"{text!r} is not a series selector like name{{label=\"value\"}}")
    matchers = [(m.name, operator(m.op), m.value) for m in node.matchers.matchers if m.name != "__name__"]
    return name, matchers


def operator(op: MatchOp) -> str:
    """A matcher's operator as written: ``=``, ``!=``, ``=~``, ``!~``."""
    return next(text for known, text in _OPERATORS if known == op)
