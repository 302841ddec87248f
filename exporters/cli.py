"""``medobs exporter ...``: the group; each exporter's own module registers its subcommand
(``medobs.cli`` imports only the one being run, so a sidecar needs only its exporter's extra)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    parser = subparsers.add_parser(
        "exporter",
        help="run one of the package's Prometheus exporters",
        description="Run one of the package's Prometheus exporters; each serves /metrics until SIGTERM.",
        epilog="Run `medobs exporter EXPORTER --help` for each exporter's options.",
    )
    return parser.add_subparsers(dest="exporter", required=True, metavar="EXPORTER", parser_class=type(parser))
