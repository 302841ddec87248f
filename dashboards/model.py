"""The built dashboard JSON, as ``lint``, ``check`` and ``publish`` read it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.generate import DASHBOARDS_DIR
from medobs import REPO_ROOT, UserError

#: Where ``medobs build`` writes the dashboards: the default input of every command.
BUILT_DASHBOARDS = REPO_ROOT / "build" / DASHBOARDS_DIR


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


def load(paths: Sequence[Path]) -> list[Board]:
    """The dashboards in ``paths`` (files, or folders of ``*.json``), sorted by file name."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist: run `make build` first, or name dashboard JSON files")
    if not files:
        raise UserError(f"no dashboard JSON files in {', '.join(map(str, paths))}: run `make build` first")
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
