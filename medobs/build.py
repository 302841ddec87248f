"""``medobs build``: regenerate everything under build/ from the definitions.

build/ holds generated files only. Each generator returns ``{path under build/: text}``; the
union is written, files that no generator produces any more are removed, and ``--check``
compares instead of writing (the tests use it to fail on a stale build/).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from alerts import build as alerts
from dashboards import generate as dashboards
from medobs import REPO_ROOT, UserError
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


def generate() -> dict[str, str]:
    files: dict[str, str] = {}
    for produce in generators():
        for path, text in produce().items():
            if path in files:
                raise RuntimeError(f"two generators write build/{path}")
            files[path] = text
    return dict(sorted(files.items()))


def existing_files(root: Path) -> set[str]:
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def differences(root: Path, files: dict[str, str]) -> list[str]:
    """One line per file that is missing, changed or left over, relative to ``root``."""
    lines = []
    for path in sorted(existing_files(root) | set(files)):
        target = root / path
        if path not in files:
            lines.append(f"left over: {path}")
        elif not target.exists():
            lines.append(f"missing:   {path}")
        elif target.read_text() != files[path]:
            lines.append(f"changed:   {path}")
    return lines


def write(root: Path, files: dict[str, str]) -> list[str]:
    """Bring ``root`` to exactly ``files``; returns what changed."""
    changes = differences(root, files)
    for path in existing_files(root) - set(files):
        (root / path).unlink()
    for path, text in files.items():
        target = root / path
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    return changes


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="regenerate build/ (scrape configs, rules, dashboards, Kubernetes objects)",
        description=(
            "Regenerate every file under build/ deterministically from the definitions in this "
            "package. build/ holds generated files only: files no generator produces are removed."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "build", help="output folder (default: build/ of the checkout)"
    )
    parser.add_argument(
        "--check", action="store_true",
        help="write nothing; exit 1 and list the differences when the folder is stale",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    files = generate()
    if args.check:
        stale = differences(args.out, files)
        for line in stale:
            print(line)
        if stale:
            print(f"{args.out} is stale: run `make build` and commit the result")
            return 1
        print(f"{args.out} is up to date ({len(files)} files)")
        return 0
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is not a folder")
    changes = write(args.out, files)
    for line in changes:
        print(line)
    print(f"{args.out}: {len(files)} files, {len(changes)} changed")
    return 0
