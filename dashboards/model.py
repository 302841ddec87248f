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
            model = json.loads(file.read_text())
        except json.JSONDecodeError as error:
            raise UserError(f"{file}: not valid JSON: {error.msg} at line {error.lineno}") from None
        if not isinstance(model, dict) or not isinstance(model.get("panels", []), list):
            raise UserError(f"{file}: not a Grafana dashboard (a JSON object with a panels list)")
        boards.append(Board(file, model))
    return boards
