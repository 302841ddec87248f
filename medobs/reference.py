"""Reference pages generated from the code: the command line, the metric catalog, the alerts.

``make docs`` (``python -m medobs.reference docs/reference``) writes them; a unit test compares
the committed pages with :func:`pages`. The output depends on the code only: not on the
terminal's width, the environment, the home folder or where the checkout lies.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from alerts import alerts_by_domain
from medobs import cli
from medobs.core import catalog
from medobs.core.files import write_atomic

#: Where the runbooks lie, relative to docs/reference/.
RUNBOOKS = "../../alerts/runbooks"
#: The command that rewrites the pages.
COMMAND = "make docs"
#: Characters Markdown would take for emphasis: ``*``, and ``_`` not inside a word.
_EMPHASIS = re.compile(r"\*|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def pages() -> dict[str, str]:
    """``{file name: text}`` of every reference page."""
    return {"alerts.md": alerts_page(), "cli.md": cli_page(), "metrics.md": metrics_page()}


def _header(title: str, source: str) -> list[str]:
    return [f"# {title}", "", f"Generated from {source} by `{COMMAND}`; do not edit by hand.", ""]


def _cell(text: str) -> str:
    """``text`` as one line of Markdown (a table cell or a paragraph), drawn as written."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = _EMPHASIS.sub(lambda m: "\\" + m.group(0), parts[i].replace("<", "&lt;"))
    return "`".join(parts)


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def anchor(title: str) -> str:
    """GitHub's anchor of a heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


# --- the command line --------------------------------------------------------------------------


@contextlib.contextmanager
def _plain_environment() -> Iterator[None]:
    """No variable but PATH and HOME while the parsers are built (their defaults read some)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: saved[k] for k in ("PATH", "HOME") if k in saved})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _portable(text: str) -> str:
    """``text`` without this machine's home folder."""
    return text.replace(str(Path.home()), "~")


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _arguments(action: argparse.Action) -> str:
    """What follows an option (or stands for a positional), as argparse writes it in usage."""
    name, nargs = _metavar(action), action.nargs
    if nargs == 0:
        return ""
    if nargs is None:
        return name
    if nargs == "?":
        return f"[{name}]"
    if nargs == "*":
        return f"[{name} ...]"
    if nargs == "+":
        return f"{name} [{name} ...]"
    if nargs == argparse.REMAINDER:
        return "..."
    return " ".join([name] * int(nargs))


def _invocation(action: argparse.Action) -> str:
    arguments = _arguments(action)
    if not action.option_strings:
        return f"`{arguments}`"
    return ", ".join(f"`{option} {arguments}`" if arguments else f"`{option}`" for option in action.option_strings)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    return _portable(parser._get_formatter()._expand_help(action))


def _text(parser: argparse.ArgumentParser, text: str | None) -> list[str]:
    """A description or epilog: verbatim in a block when the parser keeps its lines, else a paragraph."""
    if not text:
        return []
    text = _portable(text % {"prog": parser.prog} if "%(prog)" in text else text)
    if issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter) and "\n" in text.strip():
        return ["```text", text.strip("\n"), "```", ""]
    return [_cell(text), ""]


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[argparse.ArgumentParser, str]]:
    """Each subcommand parser of ``parser`` with its one-line help, in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return found


def _command(parser: argparse.ArgumentParser, summary: str, level: int, above: str | None = None) -> list[str]:
    """The section of one command: its text, its arguments by group, then its subcommands'.

    ``summary`` is its line in the list of its parent's commands, ``above`` its parent's description.
    """
    lines = [f"{'#' * level} `{parser.prog}`", ""]
    description = parser.description if parser.description != above else None
    lines += _text(parser, description) if description else [_cell(summary), ""] if summary else []
    for group in parser._action_groups:
        actions = [
            a for a in group._group_actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        ]
        if not actions:
            continue
        lines += [f"**{group.title}**", "", _row("argument", "what"), "|---|---|"]
        lines += [_row(_invocation(a), _cell(_help(parser, a))) for a in actions]
        lines.append("")
    subcommands = _subcommands(parser)
    if subcommands:
        lines += [_row("command", "what"), "|---|---|"]
        lines += [
            _row(f"[`{sub.prog}`](#{anchor(sub.prog)})", _cell(text)) for sub, text in subcommands
        ]
        lines.append("")
    lines += _text(parser, parser.epilog)
    for sub, text in subcommands:
        lines += _command(sub, text, min(level + 1, 4), parser.description)
    return lines


def cli_page() -> str:
    """Every command and subcommand of ``medobs`` with its arguments, from the argparse parsers."""
    with _plain_environment():
        root = cli.parser()
    lines = _header("Command-line reference", "the argparse parsers of `medobs.cli.parser()`")
    lines += ["Every command also takes `-h`, `--help`. `medobs COMMAND --help` prints the same text.", ""]
    return "\n".join(lines + _command(root, "", 2)).rstrip("\n") + "\n"


# --- the metric catalog ------------------------------------------------------------------------


def metrics_page() -> str:
    """Every catalogued metric by source: name, type, unit, labels and help."""
    lines = _header("Metric catalog", "`medobs.core.catalog`")
    lines += [
        "Every metric the package exposes or queries: the package's own exporters (`medobs_*`) and the",
        "upstream ones its dashboards, alerts and SLOs use. Code takes names from the catalog",
        "(`gateway.HTTP_SERVER_REQUESTS.bucket`) instead of spelling them, and the tests check that",
        "every generated expression uses catalogued metrics only. Histograms and summaries are named",
        "without `_bucket`, `_sum`, `_count`.",
        "",
    ]
    by_name = sorted(catalog.ALL.values(), key=lambda m: m.name)
    by_source = {s: [m for m in by_name if m.source == s] for s in catalog.SOURCES}
    by_source = {source: found for source, found in by_source.items() if found}
    lines += [f"{len(catalog.ALL)} metrics from {len(by_source)} sources: "
              + ", ".join(f"[{s}](#{anchor(s)})" for s in by_source) + ".", ""]
    for source, found in by_source.items():
        lines += [f"## {source}", "", _row("metric", "type", "unit", "labels", "help"), "|---|---|---|---|---|"]
        lines += [
            _row(f"`{m.name}`", m.type, m.unit, ", ".join(f"`{label}`" for label in m.labels), _cell(m.help))
            for m in found
        ]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --- the alerts --------------------------------------------------------------------------------


def alerts_page() -> str:
    """Every alert by domain: name (its runbook's link), severity, ``for`` and summary."""
    lines = _header("Alerts", "`alerts.alerts_by_domain()`")
    lines += [
        "`critical` pages, `warning` opens a ticket, `info` is not routed, `none` is the heartbeat's",
        "(kube-prometheus-stack's convention; it goes to the heartbeat receiver). `for` is how long the",
        "condition must hold before the alert fires. Alerts defined once per scrape job or per exporter",
        "(`MedobsTargetDown`, `ScrapeJobMissing`, `ExporterCollectionFailing`) are listed once. Routing,",
        "thresholds and conventions: [../alerts.md](../alerts.md).",
        "",
        _row("alert", "domain", "severity", "for", "summary"),
        "|---|---|---|---|---|",
    ]
    rows = {  # a dict keeps the first of the rules an alert has per job or per exporter
        _row(f"[{a.name}]({RUNBOOKS}/{a.name}.md)", domain, a.severity, a.for_, _cell(a.summary)): None
        for domain, alerts in alerts_by_domain().items()
        for a in alerts
    }
    return "\n".join([*lines, *rows]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every page into the folder named on the line; remove nothing else."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m medobs.reference FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in pages().items():
        write_atomic(folder / name, text)
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
