"""``medobs exporter``: the package's Prometheus exporters, one subcommand each."""

from __future__ import annotations

import argparse

from medobs.exporters.queue import cli as queue_cli


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "exporter", help="run one of the package's Prometheus exporters",
        description="Run one of the package's Prometheus exporters in the foreground (SIGTERM stops it).",
    )
    exporters = parser.add_subparsers(dest="exporter", required=True, metavar="EXPORTER")
    queue_cli.add_parser(exporters)
