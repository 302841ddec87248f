"""SLO specs: a superset of Sloth's ``prometheus/v1`` format, read and checked field by field.

A Sloth spec compiles unchanged. The additions (docs/slo.md has the reference):

- ``slos[].period``: ``7d``, ``28d`` or ``30d`` (default ``30d``);
- SLI templates beside ``events`` and ``raw``: ``availability``, ``latency``, ``counters`` and
  ``gauge_threshold`` (see :mod:`slo.templates`);
- ``alerting.min_events``: the long window of a burn-rate alert must hold at least this many
  events before it fires (a minimum-traffic guard);
- ``for`` on ``page_alert`` / ``ticket_alert``, and ``absent_alert`` for the alert that fires
  when the SLI's metrics are absent.

Every mistake is one line naming the file and the field: ``slo/specs/x.yaml: slos[0].objective:
100 is outside (0, 100)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from medobs import UserError
from medobs.core.promql import LABEL_NAME, METRIC_NAME
from slo import templates, windows
from slo.templates import EventsSli, FieldError, RawSli

VERSION = "prometheus/v1"
RESERVED_LABELS = ("service", "slo")
ALERT_RESERVED_LABELS = RESERVED_LABELS + ("long_window", "short_window")
DEFAULT_PERIOD = "30d"
DEFAULT_ABSENT_FOR = "10m"


class SpecError(UserError):
    """A spec the compiler cannot use; the message names the file and the field."""


@dataclass(frozen=True)
class Alert:
    """One generated alert (page, ticket or absent): Sloth's ``Alert`` plus ``for``."""

    disable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    for_: str = "0s"


@dataclass(frozen=True)
class Alerting:
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    page: Alert = Alert()
    ticket: Alert = Alert()
    absent: Alert = Alert(for_=DEFAULT_ABSENT_FOR)
    min_events: float | None = None


@dataclass(frozen=True)
class Intervals:
    """Sloth's rule group intervals (``interval.all`` or one per kind of rule)."""

    sli: str | None = None
    metadata: str | None = None
    alert: str | None = None

    @property
    def split(self) -> bool:
        """Whether the kinds differ, so that each needs its own rule group."""
        return len({self.sli, self.metadata, self.alert}) > 1


@dataclass(frozen=True)
class SLO:
    service: str
    name: str
    objective: Decimal  # percent, as written: 99.9
    sli: EventsSli | RawSli
    alerting: Alerting
    labels: dict[str, str]  # spec and SLO labels merged
    period: str = DEFAULT_PERIOD
    description: str = ""
    intervals: Intervals = Intervals()
    source: str = ""

    @property
    def objective_ratio(self) -> Decimal:
        return self.objective / 100

    @property
    def budget(self) -> Decimal:
        """The error budget as a ratio: 0.001 for 99.9%."""
        return 1 - self.objective_ratio

    @property
    def period_seconds(self) -> int:
        return windows.seconds(self.period)

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"


@dataclass(frozen=True)
class Spec:
    service: str
    slos: tuple[SLO, ...]
    source: str


# --- reading -----------------------------------------------------------------------------------


class Document:
    """One YAML document of a spec file; ``fail`` builds the one-line error for a field."""

    def __init__(self, source: str, index: int | None):
        self.where = source if index is None else f"{source} (document {index + 1})"

    def fail(self, path: str, message: str) -> SpecError:
        return SpecError(f"{self.where}: {path}: {message}" if path else f"{self.where}: {message}")

    def mapping(self, value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {kind_of(value)}")
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                raise self.fail(join(path, str(key)), f"unknown field; expected one of: {', '.join(allowed)}")
        for key in required:
            if value.get(key) in (None, ""):
                raise self.fail(join(path, key), "is required")
        return value

    def text(self, value: Any, path: str, *, default: str = "") -> str:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(path, f"expected text, got {kind_of(value)}")
        return str(value)

    def name(self, value: Any, path: str) -> str:
        text = self.text(value, path)
        if not text or not all(c.isalnum() or c in "-_." for c in text) or not text[0].isalnum():
            raise self.fail(path, f"{text!r} is not a name (letters, digits, '-', '_', '.')")
        return text

    def labels(self, value: Any, path: str, reserved: tuple[str, ...] = RESERVED_LABELS) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping of label names to values, got {kind_of(value)}")
        labels = {}
        for key, item in value.items():
            key = str(key)
            if not LABEL_NAME.match(key) or key.startswith("__"):
                raise self.fail(join(path, key), "is not a valid Prometheus label name")
            if key in reserved:
                raise self.fail(join(path, key), f"is set by the compiler ({', '.join(reserved)} are reserved)")
            labels[key] = self.text(item, join(path, key))
        return labels

    def duration(self, value: Any, path: str, *, default: str) -> str:
        text = self.text(value, path, default=default)
        try:
            windows.seconds(text)
        except ValueError as error:
            raise self.fail(path, str(error)) from None
        return text

    def boolean(self, value: Any, path: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {kind_of(value)}")
        return value


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), repr(value))


def _alert(doc: Document, value: Any, path: str, default_for: str = "0s") -> Alert:
    if value is None:
        return Alert(for_=default_for)
    node = doc.mapping(value, path, ("disable", "labels", "annotations", "for"))
    return Alert(
        disable=doc.boolean(node.get("disable"), join(path, "disable")),
        labels=doc.labels(node.get("labels"), join(path, "labels"), ALERT_RESERVED_LABELS),
        annotations=doc.labels(node.get("annotations"), join(path, "annotations"), ()),
        for_=doc.duration(node.get("for"), join(path, "for"), default=default_for),
    )


def _alerting(doc: Document, value: Any, path: str) -> Alerting:
    if value is None:
        return Alerting()
    node = doc.mapping(
        value, path,
        ("name", "labels", "annotations", "page_alert", "ticket_alert", "absent_alert", "min_events"),
    )
    name = doc.text(node.get("name"), join(path, "name"))
    if name and not METRIC_NAME.match(name):
        raise doc.fail(join(path, "name"), f"{name!r} is not a valid alert name")
    min_events = node.get("min_events")
    if min_events is not None and (isinstance(min_events, bool) or not isinstance(min_events, (int, float)) or min_events <= 0):
        raise doc.fail(join(path, "min_events"), f"expected a number of events above 0, got {min_events!r}")
    return Alerting(
        name=name,
        labels=doc.labels(node.get("labels"), join(path, "labels"), ALERT_RESERVED_LABELS),
        annotations=doc.labels(node.get("annotations"), join(path, "annotations"), ()),
        page=_alert(doc, node.get("page_alert"), join(path, "page_alert")),
        ticket=_alert(doc, node.get("ticket_alert"), join(path, "ticket_alert")),
        absent=_alert(doc, node.get("absent_alert"), join(path, "absent_alert"), DEFAULT_ABSENT_FOR),
        min_events=float(min_events) if min_events is not None else None,
    )


def _intervals(doc: Document, value: Any, path: str) -> Intervals:
    if value is None:
        return Intervals()
    node = doc.mapping(value, path, ("all", "slierror", "metadata", "alert"))

    def pick(key: str) -> str | None:
        chosen = key if node.get(key) is not None else "all"
        given = node.get(chosen)
        return None if given is None else doc.duration(given, join(path, chosen), default="")

    return Intervals(pick("slierror"), pick("metadata"), pick("alert"))


def _objective(doc: Document, value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise doc.fail(path, f"expected a percentage like 99.9, got {kind_of(value)}")
    if not 0 < value < 100:
        raise doc.fail(path, f"{value} is outside (0, 100): an objective is a percentage of good events")
    return Decimal(str(value))


def _sli(doc: Document, value: Any, path: str) -> EventsSli | RawSli:
    kinds = ("events", "raw", "plugin") + tuple(templates.TEMPLATES)
    node = doc.mapping(value, path, kinds)
    given = [key for key in kinds if node.get(key) is not None]
    if len(given) != 1:
        raise doc.fail(path, f"expected exactly one of: {', '.join(k for k in kinds if k != 'plugin')}")
    (kind,) = given
    subpath = join(path, kind)
    if kind == "plugin":
        raise doc.fail(subpath, "Sloth SLI plugins are Go code medobs cannot run; use events, raw or a template")
    allowed = _SLI_FIELDS[kind] if kind in _SLI_FIELDS else templates.TEMPLATES[kind][0]
    fields = doc.mapping(node[kind], subpath, allowed)
    try:
        if kind == "events":
            doc.mapping(fields, subpath, allowed, ("error_query", "total_query"))
            return templates.events(
                doc.text(fields["error_query"], join(subpath, "error_query")),
                doc.text(fields["total_query"], join(subpath, "total_query")),
            )
        if kind == "raw":
            key = "error_ratio_query" if "error_ratio_query" in fields else "errorRatioQuery"
            doc.mapping(fields, subpath, allowed, (key,))
            return templates.raw(doc.text(fields[key], join(subpath, key)), key)
        return templates.build(kind, fields)
    except FieldError as error:
        raise doc.fail(join(subpath, error.field), error.message) from None


_SLI_FIELDS = {
    "events": ("error_query", "total_query"),
    # Sloth's struct names the field error_ratio_query; its published example writes errorRatioQuery.
    "raw": ("error_ratio_query", "errorRatioQuery"),
}

_SLO_FIELDS = ("name", "objective", "description", "labels", "sli", "alerting", "interval", "period")


def _slo(doc: Document, value: Any, path: str, service: str, spec_labels: dict[str, str], source: str) -> SLO:
    node = doc.mapping(value, path, _SLO_FIELDS, ("name", "objective", "sli"))
    name = doc.name(node["name"], join(path, "name"))
    period = doc.text(node.get("period"), join(path, "period"), default=DEFAULT_PERIOD)
    if period not in windows.PERIODS:
        raise doc.fail(join(path, "period"), f"{period!r} is not one of {', '.join(windows.PERIODS)}")
    sli = _sli(doc, node["sli"], join(path, "sli"))
    alerting = _alerting(doc, node.get("alerting"), join(path, "alerting"))
    if alerting.min_events is not None and (isinstance(sli, RawSli) or sli.scale is None):
        raise doc.fail(
            join(path, "alerting.min_events"),
            "needs an SLI that counts events (a template, or events queries using rate() or increase())",
        )
    return SLO(
        service=service,
        name=name,
        objective=_objective(doc, node["objective"], join(path, "objective")),
        sli=sli,
        alerting=alerting,
        labels={**spec_labels, **doc.labels(node.get("labels"), join(path, "labels"))},
        period=period,
        description=doc.text(node.get("description"), join(path, "description")),
        intervals=_intervals(doc, node.get("interval"), join(path, "interval")),
        source=source,
    )


def parse(document: Any, source: str, index: int | None = None) -> Spec:
    """One spec from a parsed YAML document."""
    doc = Document(source, index)
    node = doc.mapping(document, "", ("version", "service", "labels", "slos"), ("version", "service", "slos"))
    if node["version"] != VERSION:
        raise doc.fail("version", f"{node['version']!r} is not supported; expected {VERSION!r}")
    service = doc.name(node["service"], "service")
    labels = doc.labels(node.get("labels"), "labels")
    if not isinstance(node["slos"], list) or not node["slos"]:
        raise doc.fail("slos", "expected a list of SLOs")
    slos = tuple(_slo(doc, item, f"slos[{i}]", service, labels, source) for i, item in enumerate(node["slos"]))
    seen: set[str] = set()
    for i, slo in enumerate(slos):
        if slo.name in seen:
            raise doc.fail(f"slos[{i}].name", f"{slo.name!r} is used twice in service {service!r}")
        seen.add(slo.name)
    return Spec(service, slos, source)


def load(path: Path, display: str | None = None) -> list[Spec]:
    """Every spec in a YAML file (one per document)."""
    source = display or str(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(f"{source}: cannot read: {error.strerror or error}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{where}: invalid YAML: {problem}") from None
    if not documents:
        raise SpecError(f"{source}: no spec in the file")
    multi = len(documents) > 1
    return [parse(d, source, i if multi else None) for i, d in enumerate(documents)]


def spec_files(paths: Iterable[Path]) -> list[Path]:
    """The spec files named, folders expanded to their *.yaml / *.yml files (sorted)."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise SpecError(f"{path}: no *.yaml spec files in the folder")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise SpecError(f"{path}: no such file or folder")
    return files


def load_all(paths: Iterable[Path], root: Path | None = None) -> list[Spec]:
    """Every spec in ``paths``; an SLO named twice (service and name) across files is an error.
    ``root``: show file names relative to it."""
    specs: list[Spec] = []
    seen: dict[str, str] = {}
    for path in spec_files(paths):
        display = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        for spec in load(path, display):
            for slo in spec.slos:
                if slo.key in seen:
                    raise SpecError(f"{spec.source}: SLO {slo.key} is also defined in {seen[slo.key]}")
                seen[slo.key] = spec.source
            specs.append(spec)
    return specs


def all_slos(specs: Iterable[Spec]) -> list[SLO]:
    return [slo for spec in specs for slo in spec.slos]
