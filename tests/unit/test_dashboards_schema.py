"""Every built dashboard parses with Grafana's own schema library, grafana-foundation-sdk
(``Dashboard.from_json``, the models generated from Grafana's dashboard schema), and keeps its
panels, queries and variables through it; grafanalib stays the authoring library."""

from __future__ import annotations

import copy
import json

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.model import load
from tests.conftest import BUILT_DASHBOARDS

BOARDS = {board.path.stem: board for board in load([BUILT_DASHBOARDS])}


def panels(model: dict) -> list[dict]:
    return [nested for panel in model["panels"] for nested in (panel, *panel.get("panels", []))]


@pytest.mark.parametrize("key", sorted(BOARDS))
def test_the_built_dashboard_parses_with_grafana_foundation_sdk(key):
    model = BOARDS[key].model
    parsed = json.loads(json.dumps(Dashboard.from_json(copy.deepcopy(model)), cls=JSONEncoder))
    assert (parsed["uid"], parsed["title"], parsed["editable"]) == (model["uid"], model["title"], False)
    assert [(p["type"], p.get("title")) for p in panels(parsed)] == [(p["type"], p.get("title")) for p in panels(model)]
    assert [t["expr"] for p in panels(parsed) for t in p.get("targets", [])] == [
        t["expr"] for p in panels(model) for t in p.get("targets", [])
    ]
    variables = {v["name"]: v for v in parsed["templating"]["list"]}
    assert list(variables) == [v["name"] for v in model["templating"]["list"]]
    assert variables["datasource"]["current"]["value"] == next(
        v for v in model["templating"]["list"] if v["name"] == "datasource"
    )["current"]["value"]
    assert variables["cluster"]["includeAll"] is True


def test_the_parser_rejects_what_grafanalib_used_to_write():
    """A row with ``datasource: null`` (the issue's finding) does not parse: the test above would fail."""
    model = copy.deepcopy(BOARDS["database"].model)
    next(p for p in model["panels"] if p["type"] == "row")["datasource"] = None
    with pytest.raises(TypeError):
        Dashboard.from_json(model)
