"""The PromQL of SLOs: label matchers and series selectors as the compiler writes and evaluates
them, the ``{{.window}}`` placeholder of Sloth's queries, counting a counter's events step by
step, and label values that satisfy (or break) matchers for the synthetic series of generated
tests. Reading PromQL is :mod:`medobs.core.promql`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from medobs.core import durations, promql
from medobs.core.catalog import platform

#: Sloth's window placeholder, ``{{.window}}`` (Go template spacing allowed).
WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")
_OTHER_TEMPLATE = re.compile(r"\{\{(?!\s*\.window\s*\}\})")
#: What ``{{.window}}`` becomes where a query is parsed: a duration no SLI writes.
_WINDOW_PLACEHOLDER = "1234567s"

Op = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True)
class Matcher:
    label: str
    op: Op
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'

    def matches(self, value: str) -> bool:
        """Whether a label value (``""`` for a missing label) satisfies the matcher, as Prometheus
        decides it (regular expressions are anchored)."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = re.fullmatch(self.value, value, re.S) is not None
        return found if self.op == "=~" else not found


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """``'job="api-gateway", uri!~"/actuator.*"'`` -> matchers; ValueError on anything else."""
    if not text.strip():
        return ()
    try:
        _, found = promql.plain_selector(f"x{{{text}}}")
    except ValueError:
        raise ValueError(f"cannot read label matchers {text!r}; write them like job=\"x\", code=~\"5..\"") from None
    return tuple(_matcher(*parts) for parts in found)


def _matcher(label: str, op: str, value: str) -> Matcher:
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"{label}{op}: bad regular expression {value!r}: {error}") from None
    return Matcher(label, op, value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Selector:
    """A series selector: metric name and label matchers."""

    name: str
    matchers: tuple[Matcher, ...] = ()

    def __str__(self) -> str:
        return f"{self.name}{{{', '.join(map(str, self.matchers))}}}" if self.matchers else self.name

    def with_matchers(self, *extra: Matcher) -> Selector:
        return Selector(self.name, self.matchers + extra)

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return name == self.name and all(m.matches(labels.get(m.label, "")) for m in self.matchers)


def parse_selector(text: str) -> Selector:
    """``'x_total{role="dlq"}'`` -> Selector; ValueError on anything that is not a plain selector."""
    name, found = promql.plain_selector(text)
    return Selector(name, tuple(_matcher(*parts) for parts in found))


def has_window(query: str) -> bool:
    return WINDOW.search(query) is not None


def other_template(query: str) -> str | None:
    """The first Go template action other than ``{{.window}}``, which the compiler cannot expand."""
    match = _OTHER_TEMPLATE.search(query)
    return query[match.start():query.find("}}", match.start()) + 2] if match else None


def at_window(query: str, window: str) -> str:
    """The query with ``{{.window}}`` replaced by ``window``."""
    return WINDOW.sub(window, query)


_PER_SECOND = {"rate", "irate"}
_COUNTING = {"increase", "sum_over_time", "count_over_time"}

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_BRACES = r'\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}'
#: ``rate(selector[{{.window}}])`` or ``increase(...)`` of a plain series selector.
_COUNTER_OVER_WINDOW = re.compile(
    rf"\b(?:rate|increase)\s*\(\s*({_NAME}\s*(?:{_BRACES})?|{_BRACES})\s*\[\s*(?:{WINDOW.pattern})\s*\]\s*\)"
)
#: How far before a step a counter's previous sample is looked for: a series not scraped for
#: longer (a long scrape outage, a Prometheus restart) starts again as if new.
PREVIOUS_SAMPLE_LOOKBACK = "1h"


def counter_increase(selector: str, step: str) -> str:
    """Events a counter counted in the ``step`` ending at the evaluation time, without
    extrapolation: its last sample in the step minus its last one before; after a reset, its
    value (events since the reset); a series that first appears in the step, counted from zero
    when its target was up at the step's start (micrometer creates a ``status="500"`` series with
    the first 500 it times), not when the target itself is new (its counters hold history).
    Summed over consecutive steps, every event Prometheus scraped counts exactly once."""
    last = f"last_over_time({selector}[{step}])"
    before = f"last_over_time({selector}[{PREVIOUS_SAMPLE_LOOKBACK}] offset {step})"
    up = f"{platform.UP.name} offset {step} == 1"
    return f"({last} - {before} >= 0 or {last} and {before} or {last} and on (job, instance) ({up}))"


def step_events(query: str, step: str) -> str | None:
    """An SLI query with each ``rate(s[{{.window}}])`` / ``increase(s[{{.window}}])`` replaced by
    the events ``s`` counted in the ``step`` before the evaluation time (:func:`counter_increase`),
    so it gives the SLI's events per step; None when the query uses ``{{.window}}`` otherwise
    (``irate``, subqueries, ``*_over_time``), which cannot be counted so."""
    counted = _COUNTER_OVER_WINDOW.sub(lambda match: counter_increase(match.group(1).strip(), step), query)
    return None if has_window(counted) else counted


def event_scale(*queries: str) -> Literal["rate", "count"] | None:
    """What an events query returns over a window: ``rate`` (events per second: ``rate()``),
    ``count`` (events: ``increase()``, ``sum_over_time()``, ``count_over_time()``) or None when
    the queries mix them, use anything else or are not PromQL."""
    functions = set()
    window = durations.parse(_WINDOW_PLACEHOLDER)
    for query in queries:
        try:
            tree = promql.parse(at_window(query, _WINDOW_PLACEHOLDER))
        except ValueError:
            return None
        functions |= {function for function, length in promql.range_functions(tree) if length == window}
    if functions and functions <= _PER_SECOND:
        return "rate"
    if functions and functions <= _COUNTING:
        return "count"
    return None


# --- label values for synthetic series ------------------------------------------------------

_CANDIDATES = ("200", "ok", "SUCCESS", "500", "error", "work", "a", "x")


def _regex_example(pattern: str) -> str:
    """A string a simple label regex matches: the first alternative, one character per class,
    the least each quantifier allows. The caller checks the result with ``re.fullmatch``."""
    text, _ = _example_sequence(pattern, 0)
    return text


def _example_sequence(pattern: str, index: int) -> tuple[str, int]:
    atoms: list[str] = []
    while index < len(pattern) and pattern[index] not in "|)":
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            atoms.append({"d": "0", "w": "a", "s": " "}.get(pattern[index + 1], pattern[index + 1]))
            index += 2
        elif char == "[":
            end = pattern.index("]", index + 2)
            members = pattern[index + 1:end]
            atoms.append(("a" if "a" not in members else "0") if members.startswith("^") else members[0])
            index = end + 1
        elif char == "(":
            start = index + 3 if pattern.startswith("(?:", index) else index + 1
            group, index = _example_sequence(pattern, start)
            while index < len(pattern) and pattern[index] == "|":  # skip the other alternatives
                _, index = _example_sequence(pattern, index + 1)
            atoms.append(group)
            index += 1
        elif char in "*?":
            atoms.pop() if atoms else None
            index += 1
        elif char == "+" or char in "^$":
            index += 1
        elif char == "{":
            end = pattern.index("}", index)
            atoms.append(atoms.pop() * int(pattern[index + 1:end].split(",")[0]) if atoms else "")
            index = end + 1
        else:
            atoms.append("0" if char == "." else char)
            index += 1
    return "".join(atoms), index


def _satisfying(matchers: list[Matcher], avoid: list[Matcher]) -> str | None:
    """A value for one label meeting every matcher in ``matchers`` and, when ``avoid`` is given,
    failing at least one of them."""
    candidates = [m.value for m in matchers if m.op == "="]
    candidates += [_regex_example(m.value) for m in matchers if m.op == "=~"]
    candidates += [m.value + "-other" for m in matchers + avoid if m.op in ("!=", "=")]
    candidates += [_regex_example(m.value) for m in avoid if m.op in ("!~",)]
    candidates += list(_CANDIDATES) + [""]
    for value in candidates:
        if all(m.matches(value) for m in matchers) and (not avoid or not all(m.matches(value) for m in avoid)):
            return value
    return None


def series_labels(selector: Selector, *, unlike: Selector | None = None) -> dict[str, str]:
    """Labels of a series that ``selector`` selects and, when given, ``unlike`` does not.
    ValueError when no such series is found."""
    labels: dict[str, str] = {}
    names = [m.label for m in selector.matchers]
    if unlike is not None and unlike.name == selector.name:
        names += [m.label for m in unlike.matchers]
    names = list(dict.fromkeys(names))
    # First give every label a value the selector accepts, then look for one label whose value
    # can also make ``unlike`` reject the series.
    for label in names:
        value = _satisfying([m for m in selector.matchers if m.label == label], [])
        if value is None:
            raise ValueError(f"no value of {label} satisfies {selector}")
        labels[label] = value
    if unlike is None or not unlike.matches(selector.name, labels):
        return {k: v for k, v in labels.items() if v}
    for label in names:
        own = [m for m in selector.matchers if m.label == label]
        other = [m for m in unlike.matchers if m.label == label]
        value = _satisfying(own, other) if other else None
        if value is not None:
            labels[label] = value
            if not unlike.matches(selector.name, labels):
                return {k: v for k, v in labels.items() if v}
    raise ValueError(f"no series is selected by {selector} and not by {unlike}")


def series_text(name: str, labels: dict[str, str]) -> str:
    """A series in the text form promtool's input_series reads."""
    if not labels:
        return name
    return name + "{" + ", ".join(str(Matcher(k, "=", v)) for k, v in sorted(labels.items())) + "}"
