"""SLO specs: a superset of Sloth's ``prometheus/v1`` format, read and checked field by field.

A Sloth spec compiles unchanged, in either of Sloth's forms (``prometheus/v1`` files and
``sloth.slok.dev/v1`` ``PrometheusServiceLevel`` objects, see :mod:`slo.sloth`); OpenSLO
``openslo/v1`` and ``openslo/v1alpha`` objects in a spec file are converted (:mod:`slo.openslo`).
docs/slo-formats.md shows each form. The additions (docs/slo.md has the reference):

- ``slos[].period``: ``7d``, ``28d`` or ``30d`` (default ``30d``);
- SLI templates beside ``events`` and ``raw``: ``availability``, ``latency``, ``counters`` and
  ``gauge_threshold`` (see :mod:`slo.templates`);
- ``alerting.min_events``: the long window of a burn-rate alert must hold at least this many
  events before it fires (a minimum-traffic guard);
- ``for`` on ``page_alert`` / ``ticket_alert``, and ``absent_alert`` for the alert that fires
  when the SLI's metrics are absent;
- ``scrape_interval`` (spec or SLO): how often the SLI's metrics are scraped (default ``1m``).

Two specs may hold the same SLO (service and name) when their labels differ, such as the same
SLO per environment (``env: prod`` / ``env: staging``).

Every mistake is one line naming the file and the field: ``slo/specs/x.yaml: slos[0].objective:
100 is outside (0, 100)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from medobs import UserError
from medobs.core.files import read_text
from medobs.core.promql import LABEL_NAME, METRIC_NAME
from slo import sloth, templates, windows
from slo.templates import EventsSli, FieldError, RawSli

VERSION = sloth.VERSION
#: Labels the compiler writes on every series (Sloth's own names beside ours): a spec cannot set them.
RESERVED_LABELS = ("service", "slo", "sloth_id", "sloth_service", "sloth_slo")
ALERT_RESERVED_LABELS = RESERVED_LABELS + ("sloth_severity",)
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
    #: How often the SLI's metrics are scraped (a duration): windows shorter than a few scrapes see no data.
    scrape_interval: str = windows.DEFAULT_SCRAPE_INTERVAL

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
        """``service/name``; SLOs of the same key differ in their labels (one per environment)."""
        return f"{self.service}/{self.name}"

    @property
    def identity(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What no two SLOs share: service, name and labels."""
        return self.service, self.name, tuple(sorted(self.labels.items()))


@dataclass(frozen=True)
class Spec:
    service: str
    slos: tuple[SLO, ...]
    source: str


# --- reading -----------------------------------------------------------------------------------


class Document:
    """One YAML document of a spec file; ``fail`` builds the one-line error for a field.

    ``spelling`` maps field names as the parser knows them to the file's own spelling (Sloth's
    Kubernetes form writes ``errorQuery`` for ``error_query``): :meth:`mapping` accepts the
    file's spelling and :meth:`at` names fields in it.
    """

    def __init__(self, source: str, index: int | None, note: str = ""):
        self.where = (source if index is None else f"{source} (document {index + 1})") + note
        self.spelling: dict[str, str] = {}

    def spelled(self, spelling: dict[str, str]) -> Document:
        """This document read with another spelling of the field names."""
        other = copy.copy(self)
        other.spelling = spelling
        return other

    def at(self, path: str, key: str) -> str:
        """The path of field ``key`` under ``path``, spelled as the file spells it."""
        return join(path, self.spelling.get(key, key))

    def fail(self, path: str, message: str) -> SpecError:
        return SpecError(f"{self.where}: {path}: {message}" if path else f"{self.where}: {message}")

    def mapping(self, value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        """``value`` with only the ``allowed`` fields (and the ``required`` ones set), keyed by the
        parser's names whatever the file's spelling."""
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {kind_of(value)}")
        written = {self.spelling.get(key, key): key for key in allowed}
        for key in value:
            if key not in written:
                raise self.fail(join(path, str(key)), f"unknown field; expected one of: {', '.join(written)}")
        node = {written[key]: item for key, item in value.items()}
        for key in required:
            if node.get(key) in (None, ""):
                raise self.fail(self.at(path, key), "is required")
        return node

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
        disable=doc.boolean(node.get("disable"), doc.at(path, "disable")),
        labels=doc.labels(node.get("labels"), doc.at(path, "labels"), ALERT_RESERVED_LABELS),
        annotations=doc.labels(node.get("annotations"), doc.at(path, "annotations"), ()),
        for_=doc.duration(node.get("for"), doc.at(path, "for"), default=default_for),
    )


def _alerting(doc: Document, value: Any, path: str) -> Alerting:
    if value is None:
        return Alerting()
    node = doc.mapping(
        value, path,
        ("name", "labels", "annotations", "page_alert", "ticket_alert", "absent_alert", "min_events"),
    )
    name = doc.text(node.get("name"), doc.at(path, "name"))
    if name and not METRIC_NAME.match(name):
        raise doc.fail(doc.at(path, "name"), f"{name!r} is not a valid alert name")
    min_events = node.get("min_events")
    if min_events is not None and (isinstance(min_events, bool) or not isinstance(min_events, (int, float)) or min_events <= 0):
        raise doc.fail(doc.at(path, "min_events"), f"expected a number of events above 0, got {min_events!r}")
    return Alerting(
        name=name,
        labels=doc.labels(node.get("labels"), doc.at(path, "labels"), ALERT_RESERVED_LABELS),
        annotations=doc.labels(node.get("annotations"), doc.at(path, "annotations"), ()),
        page=_alert(doc, node.get("page_alert"), doc.at(path, "page_alert")),
        ticket=_alert(doc, node.get("ticket_alert"), doc.at(path, "ticket_alert")),
        absent=_alert(doc, node.get("absent_alert"), doc.at(path, "absent_alert"), DEFAULT_ABSENT_FOR),
        min_events=float(min_events) if min_events is not None else None,
    )


def _intervals(doc: Document, value: Any, path: str) -> Intervals:
    if value is None:
        return Intervals()
    node = doc.mapping(value, path, ("all", "slierror", "metadata", "alert"))

    def pick(key: str) -> str | None:
        chosen = key if node.get(key) is not None else "all"
        given = node.get(chosen)
        return None if given is None else doc.duration(given, doc.at(path, chosen), default="")

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
    subpath = doc.at(path, kind)
    if kind == "plugin":
        raise sloth.refuse_sli_plugin(doc, node[kind], subpath)
    allowed = _SLI_FIELDS[kind] if kind in _SLI_FIELDS else templates.TEMPLATES[kind][0]
    fields = doc.mapping(node[kind], subpath, allowed, ("error_query", "total_query") if kind == "events" else ())
    try:
        if kind == "events":
            return templates.events(
                doc.text(fields["error_query"], doc.at(subpath, "error_query")),
                doc.text(fields["total_query"], doc.at(subpath, "total_query")),
            )
        if kind == "raw":
            key = "error_ratio_query" if "error_ratio_query" in fields else "errorRatioQuery"
            if fields.get(key) in (None, ""):
                raise doc.fail(doc.at(subpath, key), "is required")
            return templates.raw(doc.text(fields[key], doc.at(subpath, key)), key)
        return templates.build(kind, fields)
    except FieldError as error:
        raise doc.fail(doc.at(subpath, error.field), error.message) from None


_SLI_FIELDS = {
    "events": ("error_query", "total_query"),
    # Sloth's struct names the field error_ratio_query; its published example writes errorRatioQuery.
    "raw": ("error_ratio_query", "errorRatioQuery"),
}

_SLO_FIELDS = (
    "name", "objective", "description", "labels", "sli", "alerting", "interval", "period", "scrape_interval", "plugins",
)
_SERVICE_FIELDS = ("service", "labels", "slos", "scrape_interval", "slo_plugins")


def _scrape_interval(doc: Document, value: Any, path: str, default: str) -> str:
    interval = doc.duration(value, path, default=default)
    if windows.seconds(interval) <= 0:
        raise doc.fail(path, f"{interval!r} is not a scrape interval above 0")
    return interval


def _slo(
    doc: Document, value: Any, path: str, service: str, spec_labels: dict[str, str], source: str, scrape_interval: str,
) -> SLO:
    node = doc.mapping(value, path, _SLO_FIELDS, ("name", "objective", "sli"))
    sloth.refuse_slo_plugins(doc, node.get("plugins"), doc.at(path, "plugins"))
    name = doc.name(node["name"], doc.at(path, "name"))
    period = doc.text(node.get("period"), doc.at(path, "period"), default=DEFAULT_PERIOD)
    if period not in windows.PERIODS:
        raise doc.fail(doc.at(path, "period"), f"{period!r} is not one of {', '.join(windows.PERIODS)}")
    sli = _sli(doc, node["sli"], doc.at(path, "sli"))
    alerting = _alerting(doc, node.get("alerting"), doc.at(path, "alerting"))
    if alerting.min_events is not None and (isinstance(sli, RawSli) or sli.scale is None):
        raise doc.fail(
            doc.at(doc.at(path, "alerting"), "min_events"),
            "needs an SLI that counts events (a template, or events queries using rate() or increase())",
        )
    return SLO(
        service=service,
        name=name,
        objective=_objective(doc, node["objective"], doc.at(path, "objective")),
        sli=sli,
        alerting=alerting,
        labels={**spec_labels, **doc.labels(node.get("labels"), doc.at(path, "labels"))},
        period=period,
        description=doc.text(node.get("description"), doc.at(path, "description")),
        intervals=_intervals(doc, node.get("interval"), doc.at(path, "interval")),
        source=source,
        scrape_interval=_scrape_interval(doc, node.get("scrape_interval"), doc.at(path, "scrape_interval"), scrape_interval),
    )


def parse(document: Any, source: str, index: int | None = None, note: str = "") -> Spec:
    """One spec from a parsed YAML document: Sloth's ``prometheus/v1`` form or its Kubernetes
    form; ``note`` follows the file name in errors."""
    doc = Document(source, index, note)
    if sloth.is_kubernetes(document):
        doc, body = sloth.kubernetes_spec(doc, document)
        root = "spec"
        node = doc.mapping(body, root, _SERVICE_FIELDS, ("service", "slos"))
    else:
        root = ""
        node = doc.mapping(document, root, ("version", *_SERVICE_FIELDS), ("version", "service", "slos"))
        if node["version"] != VERSION:
            raise doc.fail("version", f"{node['version']!r} is not supported; expected {VERSION!r} "
                                      f"(or apiVersion: {sloth.API_VERSION})")
    sloth.refuse_slo_plugins(doc, node.get("slo_plugins"), doc.at(root, "slo_plugins"))
    service = doc.name(node["service"], doc.at(root, "service"))
    labels = doc.labels(node.get("labels"), doc.at(root, "labels"))
    scrape_interval = _scrape_interval(
        doc, node.get("scrape_interval"), doc.at(root, "scrape_interval"), windows.DEFAULT_SCRAPE_INTERVAL)
    slos_path = doc.at(root, "slos")
    if not isinstance(node["slos"], list) or not node["slos"]:
        raise doc.fail(slos_path, "expected a list of SLOs")
    slos = tuple(
        _slo(doc, item, f"{slos_path}[{i}]", service, labels, source, scrape_interval)
        for i, item in enumerate(node["slos"])
    )
    seen: set[str] = set()
    for i, slo in enumerate(slos):
        if slo.name in seen:
            raise doc.fail(f"{slos_path}[{i}].name", f"{slo.name!r} is used twice in service {service!r}")
        seen.add(slo.name)
    return Spec(service, slos, source)


def is_openslo(document: Any) -> bool:
    return sloth.is_kubernetes(document) and str(document["apiVersion"]).startswith("openslo/")


def read_documents(path: Path, source: str) -> list[Any]:
    """The YAML documents of a spec file (empty ones left out); one line naming the file when it
    cannot be read, is not UTF-8, or is not YAML."""
    text = read_text(path, what="spec", error=SpecError)
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{where}: invalid YAML: {problem}") from None
    if not documents:
        raise SpecError(f"{source}: no spec in the file")
    return documents


def _parse_all(document: Any, source: str, index: int | None) -> list[Spec]:
    """The spec of a document, or of each item of a Kubernetes ``List`` (``kubectl get -o yaml``)."""
    if not sloth.is_list(document):
        return [parse(document, source, index)]
    items = document.get("items")
    if not isinstance(items, list):
        raise Document(source, index).fail("items", f"expected a list of objects, got {kind_of(items)}")
    return [parse(item, source, index, f" (items[{n}])") for n, item in enumerate(items)]


def load(path: Path, display: str | None = None) -> list[Spec]:
    """Every spec in a YAML file: one per Sloth document (or item of a ``List``), and those
    OpenSLO objects convert to."""
    source = display or str(path)
    documents = read_documents(path, source)
    multi = len(documents) > 1
    specs = [
        spec for i, d in enumerate(documents) if not is_openslo(d) for spec in _parse_all(d, source, i if multi else None)
    ]
    if any(is_openslo(d) for d in documents):
        from slo import openslo  # it builds on this module

        specs.extend(openslo.specs(documents, source))
    return specs


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
    """Every spec in ``paths``; an SLO defined twice across files (same service, name and labels)
    is an error, the same SLO with other labels (another environment) is another SLO.
    ``root``: show file names relative to it."""
    specs: list[Spec] = []
    seen: dict[tuple, str] = {}
    for path in spec_files(paths):
        display = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        for spec in load(path, display):
            for slo in spec.slos:
                if slo.identity in seen:
                    labels = ", ".join(f"{k}={v!r}" for k, v in sorted(slo.labels.items()))
                    raise SpecError(f"{spec.source}: SLO {slo.key} is also defined in {seen[slo.identity]}"
                                    + (f" with the same labels ({labels})" if labels else ""))
                seen[slo.identity] = spec.source
            specs.append(spec)
    return specs


def all_slos(specs: Iterable[Spec]) -> list[SLO]:
    return [slo for spec in specs for slo in spec.slos]
