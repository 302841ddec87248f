"""``medobs exporter ...``: one subcommand per exporter, each registered by its own module."""

from __future__ import annotations

import argparse

from exporters.gpu import cli as gpu_cli
from exporters.inference import cli as inference_cli
from exporters.queue import cli as queue_cli


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "exporter",
        help="run one of the package's Prometheus exporters",
        description="Run one of the package's Prometheus exporters; each serves /metrics until SIGTERM.",
        epilog="Run `medobs exporter EXPORTER --help` for each exporter's options.",
    )
    exporters = parser.add_subparsers(dest="exporter", required=True, metavar="EXPORTER", parser_class=type(parser))
    gpu_cli.add_parser(exporters)
    inference_cli.add_parser(exporters)
    queue_cli.add_parser(exporters)
