"""The layers of docs/architecture.md, checked on the import graph of the installed package.

Every ``import`` of every module counts, also those inside functions (lazy ones) and modules
named in a string where ``importlib.import_module`` is called (lazy too: the CLI imports its
commands so). Modules are
grouped into parts (:data:`PARTS`); the rules are data (:data:`LAYERS`, :data:`ALLOWED`,
:data:`CORE_ONLY`, :data:`DEV_TOOL_USERS`, :data:`LAZY_ONLY`), and :func:`violations` is the
whole checker, which the synthetic graphs at the end show catching each kind of violation.

``import_graph(site)`` reads the packages under a ``site-packages`` folder (a wheel installed
into a venv); without one, where Python imports them from (the checkout, in an editable install).
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pytest

#: The import packages the distribution installs.
PACKAGES = ("medobs", "exporters", "alerts", "dashboards", "slo")

#: part -> (layer, the modules it holds: a name and everything under it).
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "core": ("core", ("medobs.core",)),
    "exporters": ("capability", ("exporters",)),
    "alerts": ("capability", ("alerts",)),
    "dashboards": ("capability", ("dashboards",)),
    "slo": ("capability", ("slo",)),
    "deploy": ("capability", ("medobs.deploy",)),
    "cli": ("assembly", ("medobs.cli",)),
    "build": ("assembly", ("medobs.build",)),
    "mixin": ("assembly", ("medobs.mixin",)),
    "rules": ("assembly", ("medobs.rules",)),
    "stack": ("assembly", ("medobs.stack",)),
    "replica": ("assembly", ("medobs.replica",)),
    "reference": ("assembly", ("medobs.reference",)),
    "simulator": ("dev tool", ("medobs.simulator",)),
}
#: ``medobs`` itself (UserError, __version__) belongs to the core.
ROOT_PART = {"medobs": "core"}
#: The layers each layer may import (within a layer, only without cycles between parts).
ALLOWED = {
    "core": {"core"},
    "capability": {"core", "capability"},
    "assembly": {"core", "capability", "assembly", "dev tool"},
    "dev tool": {"core", "capability", "dev tool"},
}
#: Parts that may import nothing but the core (and the standard library, third-party packages).
CORE_ONLY = {"exporters"}
#: The only parts that may import the simulator (besides itself).
DEV_TOOL_USERS = {"cli", "stack"}
#: (importer, imported): only inside functions, so that the importer's module loads without it.
LAZY_ONLY = {("cli", "simulator")}


class Edge(NamedTuple):
    importer: str
    imported: str
    lazy: bool  # inside a function


def part_of(module: str) -> str | None:
    if module in ROOT_PART:
        return ROOT_PART[module]
    for part, (_, prefixes) in PARTS.items():
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return part
    return None


def _package_dirs(site: Path | None) -> dict[str, Path]:
    if site is not None:
        return {name: site / name for name in PACKAGES}
    found = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
        found[name] = Path(next(iter(spec.submodule_search_locations)))
    return found


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> Iterable[Edge]:
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    lazy = {id(inner) for f in functions for inner in ast.walk(f) if inner is not f}
    base = module if is_package else module.rpartition(".")[0]
    by_name = any(isinstance(n, ast.Attribute) and n.attr == "import_module" for n in ast.walk(tree))
    for node in ast.walk(tree):
        if by_name and isinstance(node, ast.Constant) and node.value in known and "." in node.value:
            # In a module that calls importlib.import_module, a module named in a string is
            # imported by name when it is needed (the CLI's commands).
            yield Edge(module, node.value, True)
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - node.level + 1]
                origin = ".".join([*anchor, *([origin] if origin else [])])
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod.
            names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield Edge(module, name, id(node) in lazy)


def import_graph(site: Path | None = None) -> set[Edge]:
    """Every import between the installed package's modules."""
    files = {}
    for package, root in _package_dirs(site).items():
        for path in sorted(root.rglob("*.py")):
            files[_module_name(package, root, path)] = path
    edges = set()
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges |= set(_imports(module, path.name == "__init__.py", tree, set(files)))
    return edges | {Edge(module, module, False) for module in files}  # every module, even one importing nothing


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of parts (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def violations(edges: Iterable[Edge]) -> list[str]:
    """Every broken rule, one line each (empty: the layers hold)."""
    found = []
    part_graph: dict[str, set[str]] = {}
    for edge in sorted(set(edges)):
        source, target = part_of(edge.importer), part_of(edge.imported)
        if source is None or target is None:
            unknown = edge.importer if source is None else edge.imported
            found.append(f"{unknown}: in no part of the layers (add it to PARTS and docs/architecture.md)")
            continue
        if source == target:
            continue
        part_graph.setdefault(source, set()).add(target)
        where = f"{edge.importer} imports {edge.imported}"
        source_layer, target_layer = PARTS[source][0], PARTS[target][0]
        if target_layer not in ALLOWED[source_layer]:
            found.append(f"{where}: the {source_layer} layer may not import the {target_layer} layer")
        elif source in CORE_ONLY and target != "core":
            found.append(f"{where}: {source} may import only the core")
        elif PARTS[target][0] == "dev tool" and source not in DEV_TOOL_USERS:
            found.append(f"{where}: only {' and '.join(sorted(DEV_TOOL_USERS))} may use the {target_layer}")
        elif (source, target) in LAZY_ONLY and not edge.lazy:
            found.append(f"{where} at module level: import it inside the function that needs it")
    for group in _cycles(part_graph):
        found.append(f"import cycle between parts: {' -> '.join(group)} (and back)")
    return found


def test_the_installed_package_keeps_its_layers():
    edges = import_graph()
    assert {part_of(e.importer) for e in edges} >= set(PARTS), "the graph misses parts: is the package installed?"
    assert violations(edges) == []


def test_lazy_imports_are_read():
    """The CLI reaches the simulator by name, when ``medobs simulate`` runs: the graph has that
    edge, marked lazy."""
    lazy = [e for e in import_graph() if part_of(e.importer) == "cli" and part_of(e.imported) == "simulator"]
    assert lazy and all(e.lazy for e in lazy)


def graph(*edges: tuple[str, str] | tuple[str, str, bool]) -> list[Edge]:
    return [Edge(e[0], e[1], e[2] if len(e) > 2 else False) for e in edges]  # type: ignore[misc]


@pytest.mark.parametrize("edges,expected", [
    (graph(("alerts.build", "medobs.build"), ("medobs.build", "alerts.build")),
     ["alerts.build imports medobs.build: the capability layer may not import the assembly layer",
      "import cycle between parts: alerts -> build (and back)"]),
    (graph(("slo.rules", "dashboards.model"), ("dashboards.slo", "slo.rules")),
     ["import cycle between parts: dashboards -> slo (and back)"]),
    (graph(("exporters.gpu.cli", "alerts.model")),
     ["exporters.gpu.cli imports alerts.model: exporters may import only the core"]),
    (graph(("exporters.queue.cli", "medobs.stack")),
     ["exporters.queue.cli imports medobs.stack: the capability layer may not import the assembly layer"]),
    (graph(("medobs.deploy.kubernetes", "medobs.simulator.tfserving")),
     ["medobs.deploy.kubernetes imports medobs.simulator.tfserving: the capability layer may not import the dev tool layer"]),
    (graph(("medobs.build", "medobs.simulator.scenarios", True)),
     ["medobs.build imports medobs.simulator.scenarios: only cli and stack may use the dev tool"]),
    (graph(("medobs.cli", "medobs.simulator.cli")),
     ["medobs.cli imports medobs.simulator.cli at module level: import it inside the function that needs it"]),
    (graph(("medobs.core.catalog", "slo.spec")),
     ["medobs.core.catalog imports slo.spec: the core layer may not import the capability layer"]),
    (graph(("medobs.helpers", "medobs.core")),
     ["medobs.helpers: in no part of the layers (add it to PARTS and docs/architecture.md)"]),
    (graph(("medobs.cli", "medobs.simulator.cli", True), ("medobs.stack", "medobs.simulator.platform"),
           ("exporters.gpu.cli", "medobs"), ("slo.rules", "dashboards.links"), ("medobs.cli", "medobs.build")),
     []),
])
def test_the_checker_catches_each_kind_of_violation(edges, expected):
    assert violations(edges) == expected


def test_the_reader_sees_function_level_and_relative_imports(tmp_path):
    """A fake installed tree: the reader finds an import inside a method, a module named for
    importlib, and relative imports."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "medobs" / "core").mkdir()
    (tmp_path / "medobs" / "core" / "__init__.py").write_text("")
    (tmp_path / "medobs" / "core" / "durations.py").write_text("")
    (tmp_path / "exporters" / "gpu.py").write_text(
        "from medobs.core import durations\n"
        "class X:\n    def run(self):\n        from slo import rules\n"
        "COMMANDS = {'check': 'alerts.checks', 'other': 'not.a.module'}\n"
        "import importlib\ndef load(name):\n    return importlib.import_module(COMMANDS[name])\n"
    )
    (tmp_path / "alerts" / "checks.py").write_text("")
    (tmp_path / "slo" / "rules.py").write_text("from . import spec\nfrom .spec import SLO\n")
    (tmp_path / "slo" / "spec.py").write_text("")
    edges = import_graph(tmp_path) - {Edge(m, m, False) for m in
                                      ("medobs", "medobs.core", "medobs.core.durations", "exporters", "exporters.gpu",
                                       "alerts", "alerts.checks", "dashboards", "slo", "slo.rules", "slo.spec")}
    assert edges == {
        Edge("exporters.gpu", "medobs.core.durations", False),
        Edge("exporters.gpu", "slo.rules", True),
        Edge("exporters.gpu", "alerts.checks", True),
        Edge("slo.rules", "slo.spec", False),
    }
    assert violations(edges) == [
        "exporters.gpu imports alerts.checks: exporters may import only the core",
        "exporters.gpu imports slo.rules: exporters may import only the core",
    ]
