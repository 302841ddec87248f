"""Grafana variables in the dashboards' PromQL.

Grafana expands ``$var`` / ``${var}`` / ``[[var]]`` before a query reaches Prometheus, so an
expression is parsed (by :mod:`medobs.core.promql`) only after :func:`substitute` has put
values in. For lint, :func:`parse_template` puts in placeholder durations, remembering which
one stands for ``$__rate_interval``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from promql_parser import Expr

from medobs.core import promql

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


def parse_template(expr: str) -> Expr:
    """Parse a dashboard query as written: built-in ranges become placeholders, ``$var`` stays
    (inside label matchers it is just text)."""
    return promql.parse(substitute(expr, PLACEHOLDER_DURATIONS))
