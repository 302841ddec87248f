"""``medobs simulate``: run the platform simulator in the foreground until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import signal
import threading

from medobs import UserError, port_offset_from_environment
from medobs.core import scrape_jobs
from medobs.core.runtime import listen_address
from medobs.simulator.broker import (
    DEFAULT_AMQP_URL,
    DEFAULT_MANAGEMENT_URL,
    BrokerSettings,
)
from medobs.simulator.database import DEFAULT_DSN, Database
from medobs.simulator.platform import Config, Platform, run_until_stopped
from medobs.simulator.ratelimit import DEFAULT_REDIS_URL
from medobs.simulator.scenarios import SCENARIOS, parse_assignment, scenario

#: Where the control endpoint listens by default (not a platform port).
CONTROL_PORT = 8089
#: The simulator's listeners on a scrape job's port: flag, job, what it serves.
LISTENERS = (
    ("gateway-listen", "api-gateway", "the gateway and /actuator/prometheus"),
    ("tfserving-listen", "ml-inference", "TF Serving's REST API and metrics"),
    ("kubelet-listen", "cadvisor", "the kubelet's /metrics/cadvisor (cAdvisor)"),
    ("kube-state-metrics-listen", "kube-state-metrics", "kube-state-metrics' /metrics"),
    ("cert-manager-listen", "cert-manager", "cert-manager's /metrics"),
)

_EPILOG = """\
scenarios (also: --list-scenarios, GET /scenarios on the control endpoint):
{scenarios}

change the scenario while it runs:
  curl -X POST localhost:8089/scenario -d '{{"name": "error-burst"}}'
  curl -X POST localhost:8089/scenario -d '{{"knobs": {{"error_ratio": 0.5}}}}'
  curl localhost:8089/status

knobs (--set KNOB=VALUE, or "knobs" in POST /scenario): {knobs}

credentials: RABBITMQ_USER / RABBITMQ_PASSWORD (or *_FILE) unless in --amqp-url (default
guest/guest); PostgreSQL's from the DSN, PGPASSWORD or ~/.pgpass. Never logged.
"""


def _knob(text: str) -> tuple[str, str]:
    try:
        return parse_assignment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _address(value: str) -> tuple[str, int]:
    """``HOST:PORT``; a bare ``PORT`` means loopback."""
    return listen_address(f"127.0.0.1:{value}" if value.isdigit() else value)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run the platform simulator (gateway, TF Serving, RabbitMQ and PostgreSQL traffic, faults)",
        description=(
            "Simulate the platform so that dashboards and alerts see its real metric shapes: the "
            "API gateway's micrometer metrics on /actuator/prometheus, TF Serving 2.10's REST API "
            "and metrics, HikariCP pools, studies published to and consumed from the real RabbitMQ "
            "queue medical_data (with its DLQ), and real queries against PostgreSQL. Faults are "
            "injected with --scenario at start or the control endpoint while it runs."
        ),
        epilog=_EPILOG.format(
            scenarios="\n".join(f"  {s.name:<20} {s.summary}" for s in SCENARIOS.values()),
            knobs=", ".join(SCENARIOS["healthy"].knobs.as_dict()),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ports = parser.add_argument_group("where it listens (HOST:PORT or PORT; default loopback)")
    ports.add_argument("--port-offset", type=int, metavar="N",
                       help="add N to the default ports below (default: $MEDOBS_PORT_OFFSET or 0)")
    for flag, job, what in LISTENERS:
        ports.add_argument(f"--{flag}", type=_address, metavar="HOST:PORT",
                           help=f"{what} (default: 127.0.0.1:{scrape_jobs.job(job).stand_in_port})")
    ports.add_argument("--control-listen", type=_address, metavar="HOST:PORT",
                       help=f"the control endpoint (default: 127.0.0.1:{CONTROL_PORT})")
    ports.add_argument("--tfserving-upstream", metavar="URL",
                       help="send predicts here instead of to our TF Serving (e.g. the inference sidecar's proxy)")
    backends = parser.add_argument_group("what it talks to")
    backends.add_argument("--amqp-url", default=DEFAULT_AMQP_URL, help="RabbitMQ (default: %(default)s)")
    backends.add_argument("--rabbitmq-vhost", default="/", metavar="VHOST",
                          help="vhost of medical_data, created when missing (default: %(default)s)")
    backends.add_argument("--rabbitmq-management-url", default=DEFAULT_MANAGEMENT_URL, metavar="URL",
                          help="management API, to create the vhost and report queue depths (default: %(default)s)")
    backends.add_argument("--pg-dsn", default=DEFAULT_DSN, metavar="DSN",
                          help="PostgreSQL; the database is created when missing (default: %(default)s)")
    backends.add_argument("--redis-url", default=DEFAULT_REDIS_URL, metavar="URL",
                          help="Redis of the gateway's rate limiter, password from $REDIS_PASSWORD; '' for none "
                               "(default: %(default)s)")
    behaviour = parser.add_argument_group("what it does")
    behaviour.add_argument("--scenario", default="healthy", choices=list(SCENARIOS), metavar="NAME",
                           help="scenario at start (default: %(default)s)")
    behaviour.add_argument("--set", type=_knob, action="append", default=[], metavar="KNOB=VALUE",
                           help="change one knob of the scenario (repeatable), e.g. request_rate=20")
    behaviour.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: %(default)s)")
    behaviour.add_argument("--list-scenarios", action="store_true",
                           help="print the scenarios and their knobs, then exit")
    parser.set_defaults(handler=run)


def config_from(args: argparse.Namespace) -> Config:
    try:
        knobs = scenario(args.scenario).knobs.with_changes(dict(args.set))
    except ValueError as error:
        raise UserError(str(error)) from None

    offset = args.port_offset if args.port_offset is not None else port_offset_from_environment()
    listens = {
        flag.replace("-", "_"): getattr(args, flag.replace("-", "_"))
        or ("127.0.0.1", scrape_jobs.job(job).stand_in_port + offset)
        for flag, job, _ in LISTENERS
    }
    return Config(
        **listens,
        control_listen=args.control_listen or ("127.0.0.1", CONTROL_PORT + offset),
        broker=BrokerSettings.from_flags(args.amqp_url, args.rabbitmq_vhost, args.rabbitmq_management_url),
        database=Database(args.pg_dsn),
        seed=args.seed,
        scenario=args.scenario,
        knobs=knobs,
        tfserving_upstream=args.tfserving_upstream,
        redis_url=args.redis_url or None,
    )


def run(args: argparse.Namespace) -> int:
    if args.list_scenarios:
        for item in SCENARIOS.values():
            changed = {k: v for k, v in item.knobs.as_dict().items() if v != SCENARIOS["healthy"].knobs.as_dict()[k]}
            print(f"{item.name:<20} {item.summary}  {changed or ''}".rstrip())
        return 0
    platform = Platform(config_from(args))
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    run_until_stopped(platform, stopped)
    return 0
