"""The ``medobs`` command: one entry point, a subcommand per concern."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from medobs import UserError, __version__, build, stack
from medobs.alerts import cli as alerts_cli
from medobs.dashboards import cli as dashboards
from medobs.exporters import cli as exporters_cli
from medobs.simulator import cli as simulator
from medobs.slo import cli as slo_cli


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and a pointer to --help), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
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
    build.add_parser(commands)
    dashboards.add_parser(commands)
    stack.add_parser(commands)
    exporters_cli.add_parser(commands)
    alerts_cli.add_parser(commands)
    slo_cli.add_parser(commands)
    simulator.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
