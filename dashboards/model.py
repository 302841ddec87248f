"""The dashboard JSON models, as ``lint``, ``check`` and ``publish`` read them: the package's own,
rendered fresh, or the files a user names."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards import generate
from medobs import UserError
from medobs.core.files import read_text


@dataclass(frozen=True)
class Board:
    """One dashboard JSON model and the file it came from."""

    path: Path
    model: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.model.get("title", ""))

    @property
    def uid(self) -> str:
        return str(self.model.get("uid") or "")

    @property
    def variables(self) -> list[dict[str, Any]]:
        return list(self.model.get("templating", {}).get("list", []))

    def panels(self) -> Iterator[dict[str, Any]]:
        """Every panel that shows data: rows left out, panels inside collapsed rows included."""
        for panel in self.model.get("panels", []):
            if panel.get("type") == "row":
                yield from panel.get("panels", [])
            else:
                yield panel


def variable_query(variable: dict[str, Any]) -> str:
    """A variable's query text (Grafana stores it as a string or as ``{"query": ...}``)."""
    query = variable.get("query", "")
    return str(query.get("query", "")) if isinstance(query, dict) else str(query)


def queries(panel: dict[str, Any]) -> list[dict[str, Any]]:
    """The panel's targets that Grafana runs (hidden ones left out)."""
    return [t for t in panel.get("targets", []) if not t.get("hide") and t.get("expr")]


def defined() -> list[Board]:
    """The package's dashboards, rendered now exactly as ``medobs build`` writes them (each named
    by its path under the build folder), sorted by file name."""
    prefix = f"{generate.DASHBOARDS_DIR}/"
    built = generate.build_files()
    return [Board(Path(path), json.loads(built[path])) for path in sorted(built) if path.startswith(prefix)]


def load(paths: Sequence[Path]) -> list[Board]:
    """The dashboards in ``paths`` (files, or folders of ``*.json``), sorted by file name; with no
    paths, the package's own (:func:`defined`)."""
    if not paths:
        return defined()
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist: name dashboard JSON files or folders, or none for the package's")
    if not files:
        raise UserError(f"no dashboard JSON files in {', '.join(map(str, paths))}")
    boards = []
    for file in files:
        try:
            model = json.loads(read_text(file, what="dashboard"))
        except json.JSONDecodeError as error:
            raise UserError(f"{file}: not valid JSON: {error.msg} at line {error.lineno}") from None
        except RecursionError:
            raise UserError(f"{file}: not valid JSON: nested too deeply") from None
        if not isinstance(model, dict):
            raise UserError(f"{file}: not a Grafana dashboard (a JSON object with a panels list)")
        misplaced = shape_problem(model, _DASHBOARD)
        if misplaced:
            raise UserError(f"{file}: not a Grafana dashboard: {misplaced}")
        boards.append(Board(file, model))
    return boards


#: The parts of a dashboard model that lint, check and publish walk, with the JSON type of each:
#: ``dict`` / ``str`` a value of that type, ``{key: shape}`` an object (other keys are free),
#: ``[shape]`` a list of them.
_TARGETS = [dict]
_FIELD_CONFIG = {"defaults": dict, "overrides": [{"properties": [dict]}]}
_LEAF_PANEL = {"targets": _TARGETS, "fieldConfig": _FIELD_CONFIG}
_PANEL = {**_LEAF_PANEL, "panels": [_LEAF_PANEL]}  # a row holds the panels it collapses
_DASHBOARD = {"panels": [_PANEL], "templating": {"list": [dict]}, "tags": [str]}


def shape_problem(value: Any, shape: Any, where: str = "") -> str:
    """Where ``value`` departs from ``shape`` (see ``_DASHBOARD``), as one phrase; "" if nowhere."""
    expected = dict if isinstance(shape, dict) else list if isinstance(shape, list) else shape
    if not isinstance(value, expected):
        return f"{where or 'the model'} is {_json_type(value)}, not {_json_type(expected())}"
    if isinstance(shape, dict):
        found = (shape_problem(value[key], inner, f"{where}.{key}".lstrip("."))
                 for key, inner in shape.items() if key in value)
    elif isinstance(shape, list):
        found = (shape_problem(item, shape[0], f"{where}[{index}]") for index, item in enumerate(value))
    else:
        return ""
    return next((problem for problem in found if problem), "")


def _json_type(value: Any) -> str:
    """How JSON names ``value``'s type, with an article."""
    names = ((bool, "a boolean"), (dict, "an object"), (list, "a list"), (str, "a string"), ((int, float), "a number"))
    return next((name for kind, name in names if isinstance(value, kind)), "null")
