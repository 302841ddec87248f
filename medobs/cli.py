"""The ``medobs`` command: one entry point, a subcommand per concern."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from medobs import UserError, __version__
from medobs.core import site
from medobs.core import logs

# Each command (a group's subcommands named after it: "exporter gpu"), the module whose
# ``add_parser`` registers it (a group's returns its subparsers), and the extra it needs beyond
# the core (pyproject.toml). Only the modules of the command being run are imported, so that an
# exporter runs without the stack's, the simulator's or the dashboards' dependencies installed.
COMMANDS: dict[str, tuple[str, str | None]] = {
    "build": ("medobs.build", "build"),
    "mixin": ("medobs.mixin", "build"),
    "dashboards": ("dashboards.cli", "build"),
    "stack": ("medobs.stack", "stack"),
    "exporter": ("exporters.cli", None),
    "exporter gpu": ("exporters.gpu.cli", "gpu"),
    "exporter inference": ("exporters.inference.cli", "inference"),
    "exporter queue": ("exporters.queue.cli", "queue"),
    "rules": ("medobs.rules", "build"),
    "backup-metrics": ("alerts.cli", None),
    "slo": ("slo.cli", "build"),
    "simulate": ("medobs.simulator.cli", "stack"),
}
#: The third-party modules the extras bring (import names): one of them missing means an extra
#: is not installed; any other missing module is a bug and stays a traceback.
EXTRA_MODULES = frozenset({
    "aiohttp", "attr", "bcrypt", "certifi", "grafanalib", "h2", "pika", "promql_parser", "psutil", "psycopg",
    "pynvml", "redis", "requests", "yaml",
})


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and a pointer to --help), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def chosen_command(argv: list[str]) -> str | None:
    """The deepest known command named on the line (``exporter gpu``); the top-level options and
    the groups take no values, so a group's subcommand is the word right after it."""
    words = argv[next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv)):]
    chosen = None
    for depth in range(1, len(words) + 1):
        if " ".join(words[:depth]) not in COMMANDS:
            break
        chosen = " ".join(words[:depth])
    return chosen


def missing_extra(command: str, error: ModuleNotFoundError) -> str | None:
    """What to install when ``command`` needs an extra that ``error`` shows missing (``needs the
    gpu extra: pip install 'medobs[gpu]'``); None for any other missing module."""
    extra = COMMANDS[command][1]
    if extra is None or (error.name or "").partition(".")[0] not in EXTRA_MODULES:
        return None
    return f"needs the {extra} extra: pip install 'medobs[{extra}]'"


def _register(subparsers: argparse._SubParsersAction, group: str, chosen: str | None) -> None:
    """The commands of ``group`` ("" for the top level): the chosen one alone, or all of them; a
    command whose extra is missing is listed with what to install (its import fails only when run)."""
    prefix = f"{group} " if group else ""
    names = [name for name in COMMANDS if name.startswith(prefix) and " " not in name[len(prefix):]]
    on_the_line = [name for name in names if chosen and (chosen + " ").startswith(name + " ")]
    for name in on_the_line or names:
        try:
            module = importlib.import_module(COMMANDS[name][0])
        except ModuleNotFoundError as error:
            needs = missing_extra(name, error)
            if name in on_the_line or needs is None:
                raise
            subparsers.add_parser(name[len(prefix):], help=needs)
            continue
        commands = module.add_parser(subparsers)
        if commands is not None:
            _register(commands, name, chosen)


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or, given a known command, the command line of that one alone."""
    root = _Parser(
        prog="medobs",
        description=(
            "Observability and SLOs for the medical-imaging ML platform: exporters, generated "
            "Prometheus / Alertmanager configuration, Grafana dashboards, SLO rules and reports, "
            "and a local monitoring stack."
        ),
        epilog="Run `medobs COMMAND --help` for each command's options.",
    )
    root.add_argument("--version", action="version", version=f"medobs {__version__}")
    root.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _register(commands, "", command)
    return root


def run(command: str | None, argv: list[str]) -> int:
    args = parser(command).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "log_format", None):  # an exporter's --log.level / --log.format, before it logs
        logs.configure(args.log_level, args.log_format)
    try:
        # A command that generates output takes a site file (--config, $MEDOBS_CONFIG): active while it runs.
        chosen_site = site.from_arguments(args.config) if hasattr(args, "config") else site.current()
        with site.active(chosen_site):
            return args.handler(args)
    except UserError as error:
        print(f"medobs {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`medobs rules list | head -1`): no traceback, nothing more to write.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = chosen_command(argv)
    try:
        return run(command, argv)
    except ModuleNotFoundError as error:
        # An extra the command needs is not installed (when its module or its handler imports it).
        needs = missing_extra(command, error) if command else None
        if needs is None:
            raise
        print(f"medobs {command}: {needs}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
