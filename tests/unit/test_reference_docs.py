"""The generated reference pages of docs/reference/ match the code, and every relative link of the
README and docs/ leads to a file (and a heading, where it names one)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from alerts import all_alerts
from medobs import reference
from medobs.cli import parser
from medobs.core import catalog
from tests.conftest import REPO

REFERENCE = REPO / "docs" / "reference"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)


def test_the_committed_pages_are_what_make_docs_writes():
    pages = reference.pages()
    for name, text in pages.items():
        path = REFERENCE / name
        assert path.exists(), f"docs/reference/{name} is missing: run `make docs`"
        assert path.read_text() == text, f"docs/reference/{name} is stale: run `make docs`"
    left_over = sorted(p.name for p in REFERENCE.iterdir())
    assert left_over == sorted(pages), "docs/reference/ holds pages `make docs` does not write"


def test_the_cli_page_does_not_depend_on_the_terminal_or_the_environment(monkeypatch):
    page = reference.cli_page()
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("RABBITMQ_URL", "http://elsewhere:15672")
    monkeypatch.setenv("MEDOBS_STATE_DIR", "/tmp/elsewhere")
    assert reference.cli_page() == page


def every_parser(root: argparse.ArgumentParser):
    yield root
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from every_parser(sub)


def test_the_cli_page_has_every_command_and_option():
    page = reference.cli_page()
    for command in every_parser(parser()):
        assert f"# `{command.prog}`\n" in page, command.prog
        section = page.split(f"# `{command.prog}`\n", 1)[1]
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, (command.prog, option)


def test_the_metrics_and_alerts_pages_list_every_metric_and_alert():
    metrics = reference.metrics_page()
    assert all(f"| `{name}` |" in metrics for name in catalog.ALL)
    alerts = reference.alerts_page()
    assert all(f"[{alert.name}]({reference.RUNBOOKS}/{alert.name}.md)" in alerts for alert in all_alerts())


def links(page: Path) -> list[str]:
    """The link targets of a Markdown page, outside code blocks and code spans."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return _LINK.findall(text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {reference.anchor(title.replace("`", "")) for title in _HEADING.findall(text)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, heading = target.partition("#")
        found = (page.parent / path).resolve() if path else page
        if not found.exists():
            broken.append(f"{target}: no such file")
        elif heading and found.suffix == ".md" and heading not in anchors(found):
            broken.append(f"{target}: no such heading in {found.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(dict.fromkeys(broken))
