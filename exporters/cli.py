"""``medobs exporter``: the package's Prometheus exporters, one subcommand each."""

from __future__ import annotations

import argparse

from medobs.exporters.inference import cli as inference


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "exporter",
        help="run one of the package's Prometheus exporters",
        description="Run one of the package's Prometheus exporters; each serves /metrics until SIGTERM.",
    )
    exporters = parser.add_subparsers(dest="exporter", required=True, metavar="EXPORTER")
    inference.add_parser(exporters)
