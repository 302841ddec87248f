"""``medobs stack``: the local monitoring stack on loopback, without Docker.

``up`` starts each component as a background process with its pid, log and data under a state
folder outside the source tree (``$MEDOBS_STATE_DIR``, default ``~/.local/state/medobs``);
``down`` stops exactly the processes ``up`` recorded; ``status`` shows each component and each
Prometheus target's health; ``logs`` shows a component's log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import yaml

from medobs import REPO_ROOT, UserError, scrape
from medobs.alerts import alertmanager

DEFAULT_STATE_DIR = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "medobs"


@dataclass(frozen=True)
class Stack:
    """Where one stack keeps its state and which loopback ports it uses."""

    state_dir: Path
    build_dir: Path
    port_offset: int = 0

    def port(self, job_name: str) -> int:
        return scrape.job(job_name).port + self.port_offset

    @property
    def ports(self) -> dict[str, int]:
        return {name: self.port(name) for name in scrape.JOB_NAMES}

    def url(self, job_name: str) -> str:
        return f"http://127.0.0.1:{self.port(job_name)}"

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    def prometheus_config(self) -> Path:
        """The native config from build/; re-rendered into the state folder when ports move."""
        built = self.build_dir / "prometheus" / "prometheus-native.yml"
        if not built.exists():
            raise UserError(f"{built} is missing: run `make build` first (or pass --build-dir)")
        if self.port_offset == 0:
            return built
        config = scrape.prometheus_config("native", self.ports)
        config["rule_files"] = [str(self.build_dir / "prometheus" / "rules" / "*.yml")]
        target = self.path("prometheus.yml")
        target.write_text(yaml.safe_dump(config, sort_keys=True))
        return target

    def alertmanager_config(self) -> Path:
        """The native Alertmanager config from build/; re-rendered when ports move (its
        receivers post to the loopback webhook port, moved by the offset too)."""
        built = self.build_dir / "alertmanager" / "alertmanager-native.yml"
        if not built.exists():
            raise UserError(f"{built} is missing: run `make build` first (or pass --build-dir)")
        if self.port_offset == 0:
            return built
        target = self.path("alertmanager.yml")
        config = alertmanager.local_config(alertmanager.LOCAL_WEBHOOK_PORT + self.port_offset)
        target.write_text(yaml.safe_dump(config, sort_keys=True))
        return target


@dataclass(frozen=True)
class Component:
    """A process of the stack: how to start it and how to tell it is ready."""

    name: str
    job: str  # the scrape job whose port it listens on
    binary: str
    install_hint: str
    argv: Callable[[Stack], list[str]]
    ready_path: str = "/metrics"
    env: Callable[[Stack], dict[str, str]] = field(default=lambda stack: {})


def _prometheus_argv(stack: Stack) -> list[str]:
    return [
        "prometheus",
        f"--config.file={stack.prometheus_config()}",
        f"--storage.tsdb.path={stack.path('data', 'prometheus')}",
        f"--web.listen-address=127.0.0.1:{stack.port('prometheus')}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=15d",
    ]


def _postgres_exporter_argv(stack: Stack) -> list[str]:
    return [
        "prometheus-postgres-exporter",
        f"--web.listen-address=127.0.0.1:{stack.port('postgresql')}",
        f"--extend.query-path={stack.build_dir / 'postgres-exporter' / 'queries.yaml'}",
    ]


def _postgres_exporter_env(stack: Stack) -> dict[str, str]:
    # The DSN carries no password: postgres_exporter's libpq reads PGPASSWORD from the environment.
    return {"DATA_SOURCE_NAME": os.environ.get("MEDOBS_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable")}


def _redis_exporter_argv(stack: Stack) -> list[str]:
    # REDIS_PASSWORD, if set, is read from the environment by the exporter itself.
    return [
        "prometheus-redis-exporter",
        "-web.listen-address", f"127.0.0.1:{stack.port('redis')}",
        "-redis.addr", os.environ.get("MEDOBS_REDIS_ADDR", "redis://127.0.0.1:6379"),
    ]


def _node_exporter_argv(stack: Stack) -> list[str]:
    # `medobs backup-metrics --textfile-dir <state>/textfile` records backups for this collector.
    return [
        "prometheus-node-exporter",
        f"--web.listen-address=127.0.0.1:{stack.port('node')}",
        f"--collector.textfile.directory={stack.path('textfile')}",
    ]


def _medobs(*args: str) -> list[str]:
    """A command of this package, run by the same Python that runs the stack."""
    return [sys.executable, "-m", "medobs.cli", *args]


def _queue_exporter_argv(stack: Stack) -> list[str]:
    # Credentials, if not guest, come from RABBITMQ_USER / RABBITMQ_PASSWORD(_FILE) in the environment.
    return _medobs(
        "exporter", "queue", "--listen", f"127.0.0.1:{stack.port('rabbitmq')}",
        "--rabbitmq-url", os.environ.get("MEDOBS_RABBITMQ_URL", "http://127.0.0.1:15672"),
    )


def _gpu_exporter_argv(stack: Stack) -> list[str]:
    return _medobs("exporter", "gpu", "--listen", f"127.0.0.1:{stack.port('gpu')}")


def _alertmanager_argv(stack: Stack) -> list[str]:
    return [
        "prometheus-alertmanager",
        f"--config.file={stack.alertmanager_config()}",
        f"--storage.path={stack.path('data', 'alertmanager')}",
        f"--web.listen-address=127.0.0.1:{stack.port('alertmanager')}",
        "--cluster.listen-address=",  # one local instance: no gossip port
    ]


COMPONENTS: tuple[Component, ...] = (
    Component(
        "prometheus", "prometheus", "prometheus", "apt install prometheus",
        _prometheus_argv, ready_path="/-/ready",
    ),
    Component(
        "alertmanager", "alertmanager", "prometheus-alertmanager", "apt install prometheus-alertmanager",
        _alertmanager_argv, ready_path="/-/ready",
    ),
    Component(
        "postgres-exporter", "postgresql", "prometheus-postgres-exporter",
        "apt install prometheus-postgres-exporter", _postgres_exporter_argv, env=_postgres_exporter_env,
    ),
    Component(
        "redis-exporter", "redis", "prometheus-redis-exporter", "apt install prometheus-redis-exporter",
        _redis_exporter_argv,
    ),
    Component(
        "node-exporter", "node", "prometheus-node-exporter", "apt install prometheus-node-exporter",
        _node_exporter_argv,
    ),
    Component("queue-exporter", "rabbitmq", sys.executable, "reinstall medobs (make venv)", _queue_exporter_argv),
    Component("gpu-exporter", "gpu", sys.executable, "reinstall medobs (make venv)", _gpu_exporter_argv),
)


def component(name: str) -> Component:
    for candidate in COMPONENTS:
        if candidate.name == name:
            return candidate
    raise UserError(f"unknown component {name!r}; one of: {', '.join(c.name for c in COMPONENTS)}")


# --- processes -------------------------------------------------------------------------------


def _pid_file(stack: Stack, comp: Component) -> Path:
    return stack.path("pids", f"{comp.name}.json")


def running_process(stack: Stack, comp: Component) -> psutil.Process | None:
    """The process ``up`` started for ``comp``, if it is still the same process."""
    pid_file = _pid_file(stack, comp)
    try:
        record = json.loads(pid_file.read_text())
        process = psutil.Process(record["pid"])
        if abs(process.create_time() - record["create_time"]) < 0.01 and process.is_running():
            if process.status() != psutil.STATUS_ZOMBIE:
                return process
    except (OSError, ValueError, KeyError, psutil.Error):
        pass
    return None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _check_can_start(stack: Stack, comp: Component) -> None:
    if shutil.which(comp.binary) is None:
        raise UserError(
            f"{comp.name}: `{comp.binary}` not found: {comp.install_hint} "
            "(or use the docker-compose stack: docker compose up)"
        )
    port = stack.port(comp.job)
    if port_in_use(port):
        raise UserError(
            f"{comp.name}: port {port} on 127.0.0.1 is in use by another process: stop it, or run "
            "`medobs stack up --port-offset N` to move the whole stack"
        )


def start(stack: Stack, comp: Component) -> tuple[psutil.Process, bool]:
    """Start ``comp`` unless it already runs; returns the process and whether it was started."""
    existing = running_process(stack, comp)
    if existing is not None:
        return existing, False
    _check_can_start(stack, comp)
    for folder in ("pids", "logs", "data", "textfile"):
        stack.path(folder).mkdir(parents=True, exist_ok=True)
    argv = comp.argv(stack)
    argv[0] = shutil.which(argv[0]) or argv[0]
    log = open(stack.path("logs", f"{comp.name}.log"), "ab")
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **comp.env(stack)},
        cwd=stack.state_dir,
    )
    log.close()
    handle = psutil.Process(process.pid)
    _pid_file(stack, comp).write_text(
        json.dumps({"pid": process.pid, "create_time": handle.create_time(), "argv": argv})
    )
    return handle, True


def wait_ready(stack: Stack, comp: Component, process: psutil.Process, timeout: float = 60.0) -> None:
    url = stack.url(comp.job) + comp.ready_path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            log = stack.path("logs", f"{comp.name}.log")
            raise UserError(f"{comp.name} exited during start-up; see {log}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise UserError(f"{comp.name} did not answer {url} within {timeout:.0f}s; see its log in {stack.path('logs')}")


def stop(stack: Stack, comp: Component, grace: float = 10.0) -> bool:
    """Stop the process ``up`` recorded for ``comp``; returns whether one was running."""
    process = running_process(stack, comp)
    _pid_file(stack, comp).unlink(missing_ok=True)
    if process is None:
        return False
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    try:
        process.wait(grace)
    except psutil.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    return True


# --- Prometheus targets ----------------------------------------------------------------------


def targets(stack: Stack) -> list[dict[str, str]]:
    """Active targets as Prometheus reports them: job, instance, health, lastError."""
    response = requests.get(stack.url("prometheus") + "/api/v1/targets?state=active", timeout=5)
    response.raise_for_status()
    return [
        {
            "job": t["labels"]["job"],
            "instance": t["labels"]["instance"],
            "health": t["health"],
            "error": t.get("lastError", ""),
        }
        for t in sorted(response.json()["data"]["activeTargets"], key=lambda t: t["labels"]["job"])
    ]


def wait_for_targets(stack: Stack, timeout: float) -> list[dict[str, str]]:
    """Wait until Prometheus has scraped every job the stack runs a component for successfully.

    Returns the targets; raises UserError naming those still down after ``timeout`` seconds.
    """
    expected = {comp.job for comp in COMPONENTS}
    deadline = time.monotonic() + timeout
    while True:
        found = targets(stack)
        healthy = {t["job"] for t in found if t["health"] == "up"}
        if expected <= healthy:
            return found
        if time.monotonic() > deadline:
            _print_targets(found)
            raise UserError(
                f"targets still down after {timeout:.0f}s: {', '.join(sorted(expected - healthy))}; "
                "see `medobs stack logs`"
            )
        time.sleep(0.5)


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# --- commands --------------------------------------------------------------------------------


def _stack(args: argparse.Namespace) -> Stack:
    return Stack(args.state_dir.resolve(), args.build_dir.resolve(), args.port_offset)


def cmd_up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    for comp in COMPONENTS:
        process, fresh = start(stack, comp)
        print(f"{comp.name:<20} {'started' if fresh else 'already running'} (pid {process.pid})")
        wait_ready(stack, comp, process)
    if args.wait:
        print(f"\nwaiting up to {args.wait:.0f}s for Prometheus to scrape every component ...")
        _print_targets(wait_for_targets(stack, args.wait))
    print(
        f"\nPrometheus   {stack.url('prometheus')}\nAlertmanager {stack.url('alertmanager')} "
        f"(receivers post to http://127.0.0.1:{alertmanager.LOCAL_WEBHOOK_PORT + stack.port_offset}/<receiver>)"
        f"\nstate folder {stack.state_dir}"
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stack = _stack(args)
    for comp in reversed(COMPONENTS):
        print(f"{comp.name:<20} {'stopped' if stop(stack, comp) else 'not running'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    stack = _stack(args)
    rows = [["COMPONENT", "STATE", "PID", "ADDRESS"]]
    for comp in COMPONENTS:
        process = running_process(stack, comp)
        rows.append([
            comp.name,
            "running" if process else "stopped",
            str(process.pid) if process else "-",
            f"127.0.0.1:{stack.port(comp.job)}",
        ])
    _print_table(rows)
    if running_process(stack, component("prometheus")) is None:
        return 1
    print()
    _print_targets(targets(stack))
    return 0


def _print_targets(found: list[dict[str, str]]) -> None:
    rows = [["JOB", "INSTANCE", "HEALTH", "LAST ERROR"]]
    rows += [[t["job"], t["instance"], t["health"], t["error"]] for t in found]
    _print_table(rows)


def cmd_logs(args: argparse.Namespace) -> int:
    stack = _stack(args)
    names = [args.component] if args.component else [c.name for c in COMPONENTS]
    for name in names:
        log = stack.path("logs", f"{component(name).name}.log")
        if not log.exists():
            print(f"== {name}: no log yet ({log})")
            continue
        lines = log.read_text(errors="replace").splitlines()[-args.lines :]
        print(f"== {name} ({log})")
        print("\n".join(lines))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="run the local monitoring stack natively (no Docker)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("MEDOBS_STATE_DIR", DEFAULT_STATE_DIR)),
        help="pids, logs and data (default: $MEDOBS_STATE_DIR or %(default)s)",
    )
    parser.add_argument(
        "--build-dir", type=Path, default=REPO_ROOT / "build", help="generated configs (default: %(default)s)"
    )
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("MEDOBS_PORT_OFFSET", "0")),
        help="add N to every loopback port, to run beside another stack (default: 0)",
    )
    commands = parser.add_subparsers(dest="stack_command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="start every component (again: starts only what is not running)")
    up.add_argument(
        "--wait", type=float, default=60.0, metavar="SECONDS",
        help="wait until Prometheus scrapes every component successfully (0: do not wait; default: %(default)s)",
    )
    up.set_defaults(handler=cmd_up)
    commands.add_parser("down", help="stop what `up` started").set_defaults(handler=cmd_down)
    commands.add_parser("status", help="each component and each Prometheus target's health").set_defaults(
        handler=cmd_status
    )
    logs = commands.add_parser("logs", help="the last lines of each component's log")
    logs.add_argument("component", nargs="?", help="one component (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines per log (default: %(default)s)")
    logs.set_defaults(handler=cmd_logs)
