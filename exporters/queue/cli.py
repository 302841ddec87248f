"""``medobs exporter queue``: the command line of the RabbitMQ queue exporter."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from exporters.queue import memory
from exporters.queue.client import DEFAULT_MAX_BYTES, HttpClient, TlsOptions
from exporters.queue.collector import DEPTH_SOURCES, KEDA_MODES, QueueExporter, Settings
from exporters.queue.management import MAX_PAGE_SIZE, ManagementApi
from exporters.queue.plugin import PrometheusPlugin
from exporters.queue.selection import QueueFilter
from exporters.queue.topology import DEFAULT_DLQ_PATTERNS
from medobs import UserError
from medobs.core.runtime import (
    add_server_arguments,
    byte_size,
    positive_seconds,
    read_secret,
    serve,
)

DEFAULT_PORT = 9419

DESCRIPTION = """\
Serve RabbitMQ queue and dead-letter-queue metrics for Prometheus (medobs_queue_*).

Depths, consumers and counters come from the broker's Prometheus plugin on every cluster node
(found through the management API's /api/nodes), or from the management API's paged listing where
the plugin is off. The dead-letter topology (arguments, policies, exchanges, bindings) and the
expensive details (consumer utilisation, head message timestamps, dead-letter counters) are read
in the background on their own cadences; their ages are exported.

Credentials: RABBITMQ_USER and RABBITMQ_PASSWORD, or RABBITMQ_PASSWORD_FILE / --rabbitmq-password-file
(default guest / guest); never in the URL. The user needs the `monitoring` tag.
"""

EPILOG = """\
examples:
  RABBITMQ_USER=monitor RABBITMQ_PASSWORD_FILE=/run/secrets/rmq \\
    medobs exporter queue --rabbitmq-url https://rabbitmq:15671 --ca-file /etc/ssl/rabbit-ca.pem
  medobs exporter queue --listen 127.0.0.1:9419 --include-vhost medical-platform --max-queues 500
"""


def _regex(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a regular expression: {error}") from None


def _page_size(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"{value!r} is not a page size from 1 to {MAX_PAGE_SIZE}")
    return int(value)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "queue", help="RabbitMQ queues and dead-letter queues (default port 9419)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    broker = parser.add_argument_group("broker")
    broker.add_argument(
        "--rabbitmq-url", default=os.environ.get("RABBITMQ_URL", "http://localhost:15672"), metavar="URL",
        help="management API base URL (default: $RABBITMQ_URL or %(default)s)",
    )
    broker.add_argument("--rabbitmq-user", metavar="USER", help="default: $RABBITMQ_USER, else guest")
    broker.add_argument(
        "--rabbitmq-password-file", type=Path, metavar="PATH",
        help="file holding the password (default: $RABBITMQ_PASSWORD_FILE, else $RABBITMQ_PASSWORD)",
    )
    broker.add_argument("--ca-file", type=Path, metavar="PATH", help="CA bundle to verify the broker's certificate")
    broker.add_argument("--insecure-skip-verify", action="store_true", help="do not verify the broker's certificate")
    broker.add_argument("--client-cert", type=Path, metavar="PATH", help="client certificate (PEM) for mutual TLS")
    broker.add_argument("--client-key", type=Path, metavar="PATH", help="its private key (PEM)")
    broker.add_argument(
        "--max-response-size", type=byte_size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
        help="largest answer read from the broker (for example 64MiB; default: 32MiB); a larger one is "
        "refused as kind=\"too_large\"",
    )
    broker.add_argument(
        "--plugin-credentials", action="store_true",
        help="send the credentials to the nodes' Prometheus plugin listeners too (never over plain HTTP "
        "when --rabbitmq-url is HTTPS); by default only the management URL's host gets them",
    )
    source = parser.add_argument_group("sources and cadences")
    source.add_argument(
        "--depth-source", choices=DEPTH_SOURCES, default="auto",
        help="where depths and counters come from; auto: the Prometheus plugin where the nodes have it (default)",
    )
    source.add_argument(
        "--prometheus-url", action="append", default=[], metavar="URL",
        help="a node's Prometheus plugin (repeat per node), instead of the nodes /api/nodes lists",
    )
    source.add_argument(
        "--topology-interval", type=positive_seconds, default=60.0, metavar="SECONDS",
        help="how often to re-read nodes, queue arguments and states, policies, bindings (default: %(default)s)",
    )
    source.add_argument(
        "--details-interval", type=positive_seconds, default=30.0, metavar="SECONDS",
        help="how often to re-read consumer utilisation, head message timestamps, dead-letter counters "
        "(default: %(default)s)",
    )
    source.add_argument(
        "--page-size", type=_page_size, default=MAX_PAGE_SIZE, metavar="N",
        help=f"queues per page of the management listing (1..{MAX_PAGE_SIZE}, default: %(default)s)",
    )
    output = parser.add_argument_group("what is exposed")
    output.add_argument(
        "--keda-mode", choices=KEDA_MODES, default="amqp",
        help="how medobs_queue_keda_length counts, as KEDA's rabbitmq scaler with that protocol: amqp = ready "
        "only (the seed's `host: amqp://...`, default); http = ready + unacknowledged; "
        "http-exclude-unacknowledged = ready",
    )
    output.add_argument(
        "--max-queues", type=int, default=5000, metavar="N",
        help="series for at most N queues, the deepest (ties by name); the rest are summed into "
        "queue=\"__other__\" per vhost and role (default: %(default)s)",
    )
    output.add_argument(
        "--dlq-pattern", action="append", metavar="GLOB",
        help="name pattern of dead-letter queues the topology does not reveal (repeatable; default: "
        + ", ".join(DEFAULT_DLQ_PATTERNS) + "; `*` names the work queue)",
    )
    for what in ("vhost", "queue"):
        output.add_argument(f"--include-{what}", type=_regex, metavar="REGEX", help=f"only {what}s whose whole name matches")
        output.add_argument(f"--exclude-{what}", type=_regex, metavar="REGEX", help=f"no {what}s whose whole name matches")
    add_server_arguments(parser, DEFAULT_PORT)
    parser.set_defaults(handler=run)


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    """User and password from the flags, environment or file (guest / guest when none is set)."""
    if urlsplit(args.rabbitmq_url).password is not None:
        raise UserError(
            "--rabbitmq-url carries a password: put it in RABBITMQ_PASSWORD or RABBITMQ_PASSWORD_FILE instead"
        )
    user = args.rabbitmq_user or read_secret("RABBITMQ_USER") or "guest"
    password = read_secret("RABBITMQ_PASSWORD", args.rabbitmq_password_file)
    if password is None:
        if user != "guest":
            raise UserError(f"no password for user {user!r}: set RABBITMQ_PASSWORD or RABBITMQ_PASSWORD_FILE")
        password = "guest"
    return user, password


def build(args: argparse.Namespace) -> QueueExporter:
    """The exporter the arguments describe."""
    if urlsplit(args.rabbitmq_url).scheme not in ("http", "https"):
        raise UserError(f"--rabbitmq-url {args.rabbitmq_url!r} is not an http(s) URL of the management API")
    if args.max_queues < 0:
        raise UserError("--max-queues must be 0 or more")
    for path in (args.ca_file, args.client_cert, args.client_key):
        if path is not None and not path.is_file():
            raise UserError(f"{path}: no such file")
    user, password = credentials(args)
    tls = TlsOptions(args.ca_file, args.insecure_skip_verify, args.client_cert, args.client_key)
    client = HttpClient(user, password, tls, args.max_response_size)
    settings = Settings(
        depth_source=args.depth_source,
        prometheus_urls=tuple(url.rstrip("/") for url in args.prometheus_url),
        topology_interval=args.topology_interval,
        details_interval=args.details_interval,
        keda_mode=args.keda_mode,
        max_queues=args.max_queues,
        dlq_patterns=tuple(args.dlq_pattern) if args.dlq_pattern else DEFAULT_DLQ_PATTERNS,
        queue_filter=QueueFilter(args.include_vhost, args.exclude_vhost, args.include_queue, args.exclude_queue),
        ceiling=args.scrape_timeout_ceiling,
    )
    plugin = PrometheusPlugin(client, args.plugin_credentials, args.rabbitmq_url)
    return QueueExporter(ManagementApi(client, args.rabbitmq_url, args.page_size), plugin, settings)


def run(args: argparse.Namespace) -> int:
    memory.tune()
    return serve(build(args), args)
