"""``medobs build``: regenerate the generated files of build/ (or ``--out``) from the definitions.

Each generator returns ``{path under build/: text}``; the union is written into a folder that
:class:`medobs.core.owned.OwnedFolder` manages: only files this command generated are replaced or
removed, and ``--check`` compares instead of writing (the tests use it to fail on a stale build/).
Everything is generated for one site (``--config FILE`` or ``$MEDOBS_CONFIG``, docs/site-config.md):
the site file is read, and refused with one line, before anything is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from alerts import build as alerts
from dashboards import generate as dashboards
from medobs.core import site
from medobs.core.owned import OwnedFolder
from medobs.deploy import kubernetes as k8s
from medobs.deploy import postgres_queries, scrape
from slo import files as slo

Generator = Callable[[], dict[str, str]]


def generators() -> list[Generator]:
    """Every producer of build/ files, in a fixed order."""
    return [
        scrape.build_files,
        k8s.build_files,
        postgres_queries.build_files,
        dashboards.build_files,
        alerts.build_files,
        slo.build_files,
    ]


def _add(files: dict[str, str], produced: dict[str, str]) -> None:
    for path, text in produced.items():
        if path in files:
            raise RuntimeError(f"two generators write build/{path}")
        files[path] = text


def generate(for_site: site.Site | None = None) -> dict[str, str]:
    """Every generated file for ``for_site`` (the active site when None), by path under build/."""
    with site.active(for_site or site.current()):
        files: dict[str, str] = {}
        for produce in generators():
            _add(files, produce())
        # Made from the others: the dashboards' ConfigMaps, and the kustomization listing all k8s/.
        _add(files, k8s.assembled_files(files, dashboards.DASHBOARDS_DIR))
    return dict(sorted(files.items()))


def folder(root: Path) -> OwnedFolder:
    """The output folder, owned through its ``.medobs-build.json`` manifest."""
    return OwnedFolder(root, "build")


def write(root: Path, files: dict[str, str], *, force: bool = False) -> list[str]:
    """Bring the generated files of ``root`` to ``files``, leaving every other file alone."""
    return folder(root).write(files, force=force)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="regenerate build/ (scrape configs, rules, dashboards, Kubernetes objects)",
        description=(
            "Regenerate every generated file under the output folder deterministically from the "
            "definitions in this package. Its .medobs-build.json lists what it generated: a run "
            "removes only files its previous run generated that are no longer generated, and never "
            "touches any other file there; a generated path holding someone else's file is refused."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("build"), help="output folder (default: build in the current folder)"
    )
    parser.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 and list the generated files that are missing, changed or left over",
    )
    parser.add_argument(
        "--force", action="store_true",
        help="take over files already at generated paths that this command did not write (overwriting them)",
    )
    site.add_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return sync(folder(args.out), generate(), args)


def sync(owned: OwnedFolder, files: dict[str, str], args: argparse.Namespace) -> int:
    """Write ``files`` into the owned folder ``args.out``, or with ``args.check`` only list what
    differs (exit 1 when anything does); one line per change. Shared by ``medobs build`` and
    ``medobs mixin``."""
    where = args.out.resolve()
    if args.check:
        stale = owned.differences(files)
        for line in stale:
            print(line)
        if stale:
            print(f"{where} is stale: run `medobs {owned.command} --out {args.out}` (in the checkout: `make build`)")
            return 1
        print(f"{where} is up to date ({len(files)} files)")
        return 0
    changes = owned.write(files, force=args.force)
    for line in changes:
        print(line)
    print(f"{where}: {len(files)} generated files, {len(changes)} changed")
    return 0
