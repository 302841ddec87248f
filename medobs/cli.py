"""The ``medobs`` command: one entry point, a subcommand per concern."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from medobs import UserError, __version__

# Each command and the module whose ``add_parser`` registers it. Only the module of the command
# being run is imported, so that an exporter runs without the stack's, the simulator's or the
# dashboards' dependencies in its memory.
COMMANDS: dict[str, str] = {
    "build": "medobs.build",
    "dashboards": "dashboards.cli",
    "stack": "medobs.stack",
    "exporter": "exporters.cli",
    "rules": "medobs.rules",
    "backup-metrics": "alerts.cli",
    "slo": "slo.cli",
    "simulate": "medobs.simulator.cli",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and a pointer to --help), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def chosen_command(argv: list[str]) -> str | None:
    """The command named on the line (the top-level options take no values), if it is a known one."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return command if command in COMMANDS else None


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
    modules = [COMMANDS[command]] if command else COMMANDS.values()
    for module in dict.fromkeys(modules):
        importlib.import_module(module).add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(chosen_command(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except UserError as error:
        print(f"medobs {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`medobs rules list | head -1`): no traceback, nothing more to write.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
