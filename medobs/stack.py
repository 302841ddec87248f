"""``medobs stack``: the local monitoring stack on loopback, without Docker.

``up`` renders the generated configs (``medobs build``) into ``build/`` of a state folder outside
the source tree (``$MEDOBS_STATE_DIR``, default ``~/.local/state/medobs``; ``--build-dir`` names
another build instead) and starts each component as a background process with its pid, log and
data under that state folder:
a streaming replica of the local PostgreSQL (:mod:`medobs.replica`), Prometheus and Alertmanager
with the generated configs, postgres_exporter for the primary and for the replica,
redis_exporter and node_exporter, the package's queue, GPU and inference exporters, and the
platform simulator (gateway, TF Serving, kubelet/cAdvisor, kube-state-metrics, cert-manager,
real RabbitMQ and PostgreSQL traffic) with the inference sidecar's proxy in its predict path.
``down`` stops exactly the processes ``up`` recorded (and removes the replica's copy of the
primary); ``status`` shows each component and each Prometheus target's health; ``logs`` shows a
component's log.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from alerts import alertmanager
from medobs import UserError, build, port_offset_from_environment, replica
from medobs.core import scrape_jobs
from medobs.core.catalog import Metric, gpu, inference, postgres, queue, redis
from medobs.core.catalog.tfserving import MODEL
from medobs.core.files import write_atomic
from medobs.core.prometheus import Prometheus
from medobs.deploy import scrape
from medobs.simulator.broker import DEFAULT_AMQP_URL, DEFAULT_MANAGEMENT_URL
from medobs.simulator.cli import CONTROL_PORT, LISTENERS

#: The scrape jobs the simulator stands in for, one listener each.
SIMULATOR_JOBS = tuple(job for _, job, _ in LISTENERS)
DEFAULT_STATE_DIR = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "medobs"
#: Loopback ports of the stack that no scrape job has (moved by the port offset too).
EXTRA_PORTS = {
    "simulator-control": CONTROL_PORT,
    # the inference sidecar's in-path proxy: the simulator sends its predicts through it
    "inference-proxy": scrape_jobs.INFERENCE_PROXY_PORT,
    # the primary's PostgreSQL streaming replica (its exporter is the postgresql job's second target):
    # 5432 moved among the stack's other ports, so that two stacks' port ranges stay apart
    "postgres-replica": 9432,
}
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable"
#: The scrape jobs of the package's own exporters: behind TLS and basic auth with ``up --tls``.
OWN_EXPORTER_JOBS = ("gpu", "rabbitmq", "inference-exporter")
#: The user Prometheus scrapes them as (its password is made by ``up --tls``, in the state folder).
SCRAPE_USER = "prometheus"
#: The exporters' own health gauge, shown beside their target in the health table.
SELF_HEALTH: dict[str, Metric] = {
    "gpu": gpu.UP, "rabbitmq": queue.UP, "inference-exporter": inference.UP,
    "postgresql": postgres.UP, "redis": redis.UP,
}


@dataclass(frozen=True)
class Stack:
    """Where one stack keeps its state, which loopback ports it uses, and what the simulator uses."""

    state_dir: Path
    build_dir: Path
    port_offset: int = 0
    scrape_interval: str = scrape_jobs.SCRAPE_INTERVAL
    rabbitmq_vhost: str = "/"
    postgres_database: str = "medical_platform"
    queue_include_vhost: str | None = None  # the queue exporter's --include-vhost (None: every vhost)
    tls: bool = False  # the package's exporters behind TLS and basic auth (`up --tls`)

    def port(self, name: str) -> int:
        """The loopback port of a scrape target (:data:`scrape_jobs.NATIVE_PORTS`) or of :data:`EXTRA_PORTS`."""
        base = EXTRA_PORTS[name] if name in EXTRA_PORTS else scrape_jobs.NATIVE_PORTS[name]
        return base + self.port_offset

    @property
    def ports(self) -> dict[str, int]:
        return {name: self.port(name) for name in scrape_jobs.NATIVE_PORTS}

    def url(self, name: str) -> str:
        scheme = "https" if self.tls and name in OWN_EXPORTER_JOBS else "http"
        return f"{scheme}://127.0.0.1:{self.port(name)}"

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.port(name)}"

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    def prometheus_config(self) -> Path:
        """The native config from build/; re-rendered into the state folder when ports move."""
        built = self.build_dir / "prometheus" / "prometheus-native.yml"
        if not built.exists():
            raise UserError(
                f"{built} is missing: run `medobs build --out {self.build_dir}` first, or leave --build-dir out"
            )
        if self.port_offset == 0 and self.scrape_interval == scrape_jobs.SCRAPE_INTERVAL and not self.tls:
            return built
        secured = {"scheme": "https", "tls_config": {"ca_file": str(self.path("tls", "cert.pem"))},
                   "basic_auth": {"username": SCRAPE_USER, "password_file": str(self.path("tls", "password"))}}
        config = scrape.prometheus_config("native", self.ports, self.scrape_interval,
                                          {job: secured for job in OWN_EXPORTER_JOBS} if self.tls else None)
        config["rule_files"] = [str(self.build_dir / "prometheus" / "rules" / "*.yml")]
        target = self.path("prometheus.yml")
        write_atomic(target, yaml.safe_dump(config, sort_keys=True))
        return target

    def alertmanager_config(self) -> Path:
        """The native Alertmanager config from build/; re-rendered when ports move (its
        receivers post to the loopback webhook port, moved by the offset too)."""
        built = self.build_dir / "alertmanager" / "alertmanager-native.yml"
        if not built.exists():
            raise UserError(
                f"{built} is missing: run `medobs build --out {self.build_dir}` first, or leave --build-dir out"
            )
        if self.port_offset == 0:
            return built
        target = self.path("alertmanager.yml")
        config = alertmanager.local_config(alertmanager.LOCAL_WEBHOOK_PORT + self.port_offset)
        write_atomic(target, yaml.safe_dump(config, sort_keys=True))
        return target


@dataclass(frozen=True)
class Component:
    """A process of the stack: how to start it, tell it is ready, stop it and clean up after it.

    ``ports`` are the stack ports it listens on (scrape targets or :data:`EXTRA_PORTS`). ``jobs``
    are the scrape jobs whose targets it serves (default: the job named by its first port).
    """

    name: str
    ports: tuple[str, ...]
    jobs: tuple[str, ...] | None = field(default=None, kw_only=True)

    @property
    def scrape_jobs(self) -> tuple[str, ...]:
        return self.ports[:1] if self.jobs is None else self.jobs

    def check(self, stack: Stack) -> None:
        """Raise UserError, saying what to do, when it cannot start (a port in use)."""
        for port in (stack.port(name) for name in self.ports):
            if port_in_use(port):
                raise UserError(
                    f"{self.name}: port {port} on 127.0.0.1 is in use by another process: stop it, or run "
                    "`medobs stack up --port-offset N` to move the whole stack"
                )

    def spawn(self, stack: Stack, **popen: Any) -> subprocess.Popen:
        """Start the process; ``popen``: its output and session, as every component's."""
        raise NotImplementedError

    def is_ready(self, stack: Stack) -> bool:
        raise NotImplementedError

    def shutdown(self, process: psutil.Process) -> None:
        """Ask it to stop: SIGTERM to its process group."""
        os.killpg(process.pid, signal.SIGTERM)

    def cleanup(self, stack: Stack) -> None:
        """Remove what it leaves behind once stopped (nothing by default)."""


@dataclass(frozen=True)
class Program(Component):
    """A program started with ``argv``, ready once its first port answers ``ready_path``."""

    binary: str
    install_hint: str
    argv: Callable[[Stack], list[str]]
    ready_path: str = "/metrics"
    env: Callable[[Stack], dict[str, str]] = field(default=lambda stack: {})

    def check(self, stack: Stack) -> None:
        if shutil.which(self.binary) is None:
            raise UserError(
                f"{self.name}: `{self.binary}` not found: {self.install_hint} "
                "(or use the docker-compose stack: docker compose up)"
            )
        super().check(stack)

    def spawn(self, stack: Stack, **popen: Any) -> subprocess.Popen:
        argv = self.argv(stack)
        argv[0] = shutil.which(argv[0]) or argv[0]
        return subprocess.Popen(argv, env={**os.environ, **self.env(stack)}, cwd=stack.state_dir, **popen)

    def is_ready(self, stack: Stack) -> bool:
        url = stack.url(self.ports[0]) + self.ready_path
        secured = url.startswith("https:")
        try:
            return requests.get(
                url, timeout=2, verify=str(stack.path("tls", "cert.pem")) if secured else True,
                auth=(SCRAPE_USER, stack.path("tls", "password").read_text()) if secured else None,
            ).status_code == 200
        except requests.RequestException:
            return False


@dataclass(frozen=True)
class PostgresReplica(Component):
    """The PostgreSQL streaming replica (:mod:`medobs.replica`): copied from the primary of
    ``$MEDOBS_POSTGRES_DSN`` at each start (its binaries are found then: the primary's major
    version), stopped by the postmaster's fast shutdown, its copy removed by ``down``."""

    def replica(self, stack: Stack) -> replica.Replica:
        return replica.Replica(_postgres_dsn(), stack.path("data", self.name), stack.port(self.ports[0]))

    def spawn(self, stack: Stack, **popen: Any) -> subprocess.Popen:
        return self.replica(stack).start(**popen)

    def is_ready(self, stack: Stack) -> bool:
        return self.replica(stack).is_ready()

    def shutdown(self, process: psutil.Process) -> None:
        """SIGINT to the postmaster alone: its fast shutdown, which stops its own processes."""
        process.send_signal(signal.SIGINT)

    def cleanup(self, stack: Stack) -> None:
        self.replica(stack).remove()


def _prometheus_argv(stack: Stack) -> list[str]:
    return [
        "prometheus",
        f"--config.file={stack.prometheus_config()}",
        f"--storage.tsdb.path={stack.path('data', 'prometheus')}",
        f"--web.listen-address=127.0.0.1:{stack.port('prometheus')}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=15d",
    ]


def _postgres_exporter_argv(port: str) -> Callable[[Stack], list[str]]:
    """postgres_exporter with the package's queries, on the stack's port named ``port``."""
    def argv(stack: Stack) -> list[str]:
        return [
            "prometheus-postgres-exporter",
            f"--web.listen-address=127.0.0.1:{stack.port(port)}",
            f"--extend.query-path={stack.build_dir / 'postgres-exporter' / 'queries.yaml'}",
        ]
    return argv


def _postgres_dsn() -> str:
    # The DSN carries no password: libpq reads PGPASSWORD (or ~/.pgpass) from the environment.
    return os.environ.get("MEDOBS_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)


def _redis_address() -> str:
    # REDIS_PASSWORD, if set, is read from the environment by the exporter and the simulator themselves.
    return os.environ.get("MEDOBS_REDIS_ADDR", "redis://127.0.0.1:6379")


def _redis_exporter_argv(stack: Stack) -> list[str]:
    return ["prometheus-redis-exporter", "-web.listen-address", f"127.0.0.1:{stack.port('redis')}",
            "-redis.addr", _redis_address()]


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


def _exporter(stack: Stack, name: str, job: str, *args: str) -> list[str]:
    """``medobs exporter NAME`` on the stack's port of ``job``, behind TLS and basic auth with ``--tls``."""
    secured = ("--web.config.file", str(stack.path("tls", "web.yml"))) if stack.tls else ()
    return _medobs("exporter", name, "--web.listen-address", stack.address(job), *secured, *args)


def prepare_tls(stack: Stack) -> None:
    """For ``up --tls``, once: under ``<state>/tls`` (mode 700) a self-signed certificate for
    127.0.0.1, a random password for Prometheus's scrapes, and the exporters' web config
    (exporter-toolkit's format) with its bcrypt hash."""
    folder = stack.path("tls")
    if (folder / "web.yml").exists():
        return
    openssl = shutil.which("openssl")
    if openssl is None:
        raise UserError("stack up --tls: `openssl` not found: apt install openssl")
    import bcrypt

    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-days", "825",
         "-subj", "/CN=medobs local stack", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    password = secrets.token_urlsafe(24)
    write_atomic(folder / "password", password, mode=0o600)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
    web = {"tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem"}, "basic_auth_users": {SCRAPE_USER: hashed}}
    write_atomic(folder / "web.yml", yaml.safe_dump(web), mode=0o600)


def _management_url() -> str:
    return os.environ.get("MEDOBS_RABBITMQ_URL", DEFAULT_MANAGEMENT_URL)


def _queue_exporter_argv(stack: Stack) -> list[str]:
    # Credentials, if not guest, come from RABBITMQ_USER / RABBITMQ_PASSWORD(_FILE) in the environment.
    argv = _exporter(stack, "queue", "rabbitmq", "--rabbitmq-url", _management_url())
    if stack.queue_include_vhost is not None:
        argv += ["--include-vhost", stack.queue_include_vhost]
    return argv


def _gpu_exporter_argv(stack: Stack) -> list[str]:
    # --allow-no-gpu: on a machine without the NVIDIA driver the exporter is healthy with no GPUs
    return _exporter(stack, "gpu", "gpu", "--allow-no-gpu")


def record_backup(stack: Stack) -> str:
    """A real backup (``pg_dump``) of the primary's database of ``$MEDOBS_POSTGRES_DSN`` into
    ``<state>/data/backup``, recorded by ``medobs backup-metrics`` for node_exporter: a healthy
    platform has a recent backup, so the healthy stack has one too (and PostgresBackupMetricsMissing
    stays quiet). Returns what to print."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return "backup: `pg_dump` not found (apt install postgresql-client): PostgresBackupMetricsMissing will fire"
    dsn = _postgres_dsn()
    database = conninfo_to_dict(dsn).get("dbname") or "postgres"
    artifact = stack.path("data", "backup", f"{database}.dump")
    artifact.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        _medobs("backup-metrics", "--database", str(database), "--textfile-dir", str(stack.path("textfile")),
                "--artifact", str(artifact), "--", pg_dump, "--format=custom", f"--file={artifact}", f"--dbname={dsn}"),
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        return f"backup: pg_dump of {database} failed (exit {result.returncode}): PostgresBackupFailed will fire"
    return f"backup: pg_dump of {database} recorded for node_exporter ({artifact})"


def _simulator_argv(stack: Stack) -> list[str]:
    """The simulator on the stack's ports, healthy, its predicts through the sidecar's proxy."""
    dsn = make_conninfo(**{**conninfo_to_dict(_postgres_dsn()), "dbname": stack.postgres_database})
    return _medobs(
        "simulate", "--scenario", "healthy",
        *(arg for flag, job, _ in LISTENERS for arg in (f"--{flag}", stack.address(job))),
        "--control-listen", stack.address("simulator-control"),
        "--tfserving-upstream", stack.url("inference-proxy"),
        "--amqp-url", os.environ.get("MEDOBS_AMQP_URL", DEFAULT_AMQP_URL),
        "--rabbitmq-management-url", _management_url(),
        "--rabbitmq-vhost", stack.rabbitmq_vhost,
        "--pg-dsn", dsn,
        "--redis-url", _redis_address(),
    )


def _inference_exporter_argv(stack: Stack) -> list[str]:
    """The inference sidecar beside the simulated TF Serving: its probe, and its proxy in the path."""
    return _exporter(
        stack, "inference", "inference-exporter",
        "--tfserving-url", stack.url("ml-inference"), "--model", MODEL,
        "--proxy-listen", stack.address("inference-proxy"),
    )


def _alertmanager_argv(stack: Stack) -> list[str]:
    return [
        "prometheus-alertmanager",
        f"--config.file={stack.alertmanager_config()}",
        f"--storage.path={stack.path('data', 'alertmanager')}",
        f"--web.listen-address=127.0.0.1:{stack.port('alertmanager')}",
        "--cluster.listen-address=",  # one local instance: no gossip port
    ]


_OURS = "reinstall medobs (make venv)"
_POSTGRES_EXPORTER = "apt install prometheus-postgres-exporter"
#: The primary's streaming replica; its exporter is the postgresql job's second target.
REPLICA = PostgresReplica("postgres-replica", ("postgres-replica",), jobs=())
COMPONENTS: tuple[Component, ...] = (
    # first: the component most likely unable to start (PostgreSQL binaries, replication permission),
    # so that nothing else has started when it says why
    REPLICA,
    Program(
        "prometheus", ("prometheus",), "prometheus", "apt install prometheus",
        _prometheus_argv, ready_path="/-/ready",
    ),
    Program(
        "alertmanager", ("alertmanager",), "prometheus-alertmanager", "apt install prometheus-alertmanager",
        _alertmanager_argv, ready_path="/-/ready",
    ),
    Program(
        "postgres-exporter", ("postgresql",), "prometheus-postgres-exporter", _POSTGRES_EXPORTER,
        _postgres_exporter_argv("postgresql"), env=lambda stack: {"DATA_SOURCE_NAME": _postgres_dsn()},
    ),
    Program(
        "postgres-replica-exporter", ("postgres-replica-exporter",), "prometheus-postgres-exporter",
        _POSTGRES_EXPORTER, _postgres_exporter_argv("postgres-replica-exporter"),
        env=lambda stack: {"DATA_SOURCE_NAME": REPLICA.replica(stack).dsn}, jobs=("postgresql",),
    ),
    Program(
        "redis-exporter", ("redis",), "prometheus-redis-exporter", "apt install prometheus-redis-exporter",
        _redis_exporter_argv,
    ),
    Program(
        "node-exporter", ("node",), "prometheus-node-exporter", "apt install prometheus-node-exporter",
        _node_exporter_argv,
    ),
    Program("queue-exporter", ("rabbitmq",), sys.executable, _OURS, _queue_exporter_argv),
    Program("gpu-exporter", ("gpu",), sys.executable, _OURS, _gpu_exporter_argv),
    Program(
        "simulator",
        ("simulator-control", *SIMULATOR_JOBS), sys.executable, _OURS, _simulator_argv, ready_path="/healthz",
        jobs=SIMULATOR_JOBS,
    ),
    # after the simulator: its probe finds TF Serving up; the simulator's traffic waits for its proxy
    Program("inference-exporter", ("inference-exporter", "inference-proxy"), sys.executable, _OURS,
              _inference_exporter_argv),
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


def start(stack: Stack, comp: Component) -> tuple[psutil.Process, bool]:
    """Start ``comp`` unless it already runs; returns the process and whether it was started."""
    existing = running_process(stack, comp)
    if existing is not None:
        return existing, False
    comp.check(stack)
    for folder in ("pids", "logs", "data", "textfile"):
        stack.path(folder).mkdir(parents=True, exist_ok=True)
    with open(stack.path("logs", f"{comp.name}.log"), "ab") as log:
        process = comp.spawn(
            stack, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    handle = psutil.Process(process.pid)
    write_atomic(_pid_file(stack, comp),
                 json.dumps({"pid": process.pid, "create_time": handle.create_time(), "argv": process.args}))
    return handle, True


def wait_ready(stack: Stack, comp: Component, process: psutil.Process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            log = stack.path("logs", f"{comp.name}.log")
            raise UserError(f"{comp.name} exited during start-up; see {log}")
        if comp.is_ready(stack):
            return
        time.sleep(0.2)
    raise UserError(
        f"{comp.name} was not ready on {stack.address(comp.ports[0])} within {timeout:.0f}s; "
        f"see its log in {stack.path('logs')}"
    )


def stop(stack: Stack, comp: Component, grace: float = 10.0) -> bool:
    """Stop the process ``up`` recorded for ``comp`` and clean up after it; returns whether one was running."""
    process = running_process(stack, comp)
    _pid_file(stack, comp).unlink(missing_ok=True)
    stopped = process is not None and _stop(process, comp, grace)
    comp.cleanup(stack)
    return stopped


def _stop(process: psutil.Process, comp: Component, grace: float) -> bool:
    try:
        comp.shutdown(process)
    except (ProcessLookupError, psutil.NoSuchProcess):
        return False
    if not _gone(process, grace):
        os.killpg(process.pid, signal.SIGKILL)
        _gone(process, 5)
    return True


def _gone(process: psutil.Process, timeout: float) -> bool:
    """Whether ``process`` exits within ``timeout`` seconds. An exited process counts at once, before
    whoever adopted it reaps it (a zombie is not running anything)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


# --- Prometheus targets ----------------------------------------------------------------------


def _prometheus(stack: Stack) -> Prometheus:
    return Prometheus(stack.url("prometheus"), timeout=5)


def targets(stack: Stack, with_notes: bool = True) -> list[dict[str, str]]:
    """Active targets as Prometheus reports them: job, instance, health, lastError, and the
    exporter's own health gauge where it has one (``note``, unless ``with_notes`` is false)."""
    found = _prometheus(stack).targets()
    notes = _self_health(stack) if with_notes else {}
    return [
        {
            "job": t["labels"]["job"],
            "instance": t["labels"]["instance"],
            "health": t["health"],
            "error": t.get("lastError", ""),
            "note": notes.get((t["labels"]["job"], t["labels"]["instance"]), ""),
        }
        for t in sorted(found, key=lambda t: (t["labels"]["job"], t["labels"]["instance"]))
    ]


def _self_health(stack: Stack) -> dict[tuple[str, str], str]:
    """``{(job, instance): "medobs_gpu_up 0 (no GPU: library_not_found)"}`` from Prometheus."""
    jobs = "|".join(SELF_HEALTH)
    names = "|".join(metric.name for metric in SELF_HEALTH.values())
    notes = {}
    prometheus = _prometheus(stack)
    for sample in prometheus.query(f'{{__name__=~"{names}", job=~"{jobs}"}}'):
        labels = sample["metric"]
        notes[labels["job"], labels["instance"]] = f"{labels['__name__']} {sample['value'][1]}"
    no_nvml = prometheus.query(f"{gpu.NVML_UNAVAILABLE.name} == 1")
    for sample in no_nvml:
        key = sample["metric"]["job"], sample["metric"]["instance"]
        notes[key] = f"{notes.get(key, '')} (no GPU here: {sample['metric'].get('reason', 'NVML unavailable')})".strip()
    return notes


def wait_for_targets(stack: Stack, timeout: float) -> list[dict[str, str]]:
    """Wait until Prometheus has scraped every target of every component successfully.

    Returns the targets; raises UserError naming those still down after ``timeout`` seconds.
    """
    expected = {job for comp in COMPONENTS for job in comp.scrape_jobs}
    deadline = time.monotonic() + timeout
    while True:
        found = targets(stack, with_notes=False)
        down = {t["job"] for t in found if t["health"] != "up"} | (expected - {t["job"] for t in found})
        if not down:
            return targets(stack)
        if time.monotonic() > deadline:
            _print_targets(targets(stack))
            raise UserError(
                f"targets still down after {timeout:.0f}s: {', '.join(sorted(down))}; see `medobs stack logs`"
            )
        time.sleep(0.5)


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _print_targets(found: list[dict[str, str]]) -> None:
    rows = [["JOB", "INSTANCE", "HEALTH", "EXPORTER'S OWN HEALTH / LAST ERROR"]]
    rows += [[t["job"], t["instance"], t["health"], t["error"] or t["note"]] for t in found]
    _print_table(rows)


# --- commands --------------------------------------------------------------------------------


def _stack(args: argparse.Namespace) -> Stack:
    offset = args.port_offset if args.port_offset is not None else port_offset_from_environment()
    state_dir = args.state_dir.resolve()
    return Stack(
        state_dir, args.build_dir.resolve() if args.build_dir else state_dir / "build", offset,
        scrape_interval=getattr(args, "scrape_interval", scrape_jobs.SCRAPE_INTERVAL),
        rabbitmq_vhost=args.rabbitmq_vhost, postgres_database=args.postgres_database,
        queue_include_vhost=args.queue_include_vhost, tls=getattr(args, "tls", False),
    )


_NAME_WIDTH = max(len(comp.name) for comp in COMPONENTS)


def cmd_up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    if stack.tls:
        prepare_tls(stack)
    if args.build_dir is None:
        # the stack's own folder under its state: whatever it holds was rendered by an earlier `up`
        build.write(stack.build_dir, build.generate(), force=True)
    for comp in COMPONENTS:  # a missing binary or a port in use stops `up` before it starts anything
        if running_process(stack, comp) is None:
            comp.check(stack)
    started: list[Component] = []
    try:
        for comp in COMPONENTS:
            process, fresh = start(stack, comp)
            if fresh:
                started.append(comp)
            print(f"{comp.name:<{_NAME_WIDTH}} {'started' if fresh else 'already running'} (pid {process.pid})")
            wait_ready(stack, comp, process)
    except BaseException:
        # A component that cannot start leaves nothing of this `up` behind.
        for comp in reversed(started):
            stop(stack, comp)
        raise
    print(record_backup(stack))
    if args.wait:
        print(f"\nwaiting up to {args.wait:.0f}s for Prometheus to scrape every target ...")
        _print_targets(wait_for_targets(stack, args.wait))
    webhooks = f"http://127.0.0.1:{alertmanager.LOCAL_WEBHOOK_PORT + stack.port_offset}/<receiver>"
    print()
    _print_table([
        ["Prometheus", stack.url("prometheus")],
        ["Alertmanager", f"{stack.url('alertmanager')} (receivers post to {webhooks})"],
        ["Simulator", f"{stack.url('simulator-control')} (scenario healthy; GET /scenarios, POST /scenario, "
                      f"GET /status; gateway {stack.url('api-gateway')})"],
        ["Replica", f"{stack.address(REPLICA.ports[0])} (PostgreSQL hot standby streaming from "
                    f"{REPLICA.replica(stack).primary_address})"],
        ["Grafana", "not in the native stack: `docker compose up` serves the dashboards on http://localhost:3000"],
        ["State", str(stack.state_dir)],
    ])
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stack = _stack(args)
    for comp in reversed(COMPONENTS):
        print(f"{comp.name:<{_NAME_WIDTH}} {'stopped' if stop(stack, comp) else 'not running'}")
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
            " ".join(stack.address(name) for name in comp.ports),
        ])
    _print_table(rows)
    if running_process(stack, component("prometheus")) is None:
        return 1
    print()
    _print_targets(targets(stack))
    return 0


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


def _interval(value: str) -> str:
    """argparse type: a Prometheus duration of whole seconds, 1s to 15s (``5s``)."""
    if not (value.endswith("s") and value[:-1].isdigit() and 1 <= int(value[:-1]) <= 15):
        raise argparse.ArgumentTypeError(f"{value!r} is not a scrape interval between 1s and 15s (for example 5s)")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="run the local monitoring stack natively (no Docker)",
        description=__doc__,
        epilog=(
            "environment: MEDOBS_STATE_DIR, MEDOBS_PORT_OFFSET, MEDOBS_POSTGRES_DSN (server of the exporter "
            "and the simulator), MEDOBS_REDIS_ADDR, MEDOBS_RABBITMQ_URL (management API), MEDOBS_AMQP_URL; "
            "credentials from PGPASSWORD, REDIS_PASSWORD, RABBITMQ_USER / RABBITMQ_PASSWORD(_FILE)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("MEDOBS_STATE_DIR", DEFAULT_STATE_DIR)),
        help="pids, logs and data (default: $MEDOBS_STATE_DIR or %(default)s)",
    )
    parser.add_argument(
        "--build-dir", type=Path, metavar="DIR",
        help="the configs of `medobs build --out DIR` (default: `up` renders them into build/ of the state folder)",
    )
    parser.add_argument(
        "--port-offset", type=int, metavar="N",
        help="add N to every loopback port, to run beside another stack (default: $MEDOBS_PORT_OFFSET or 0)",
    )
    isolation = parser.add_argument_group("what the simulator and the queue exporter use (to run beside another stack)")
    isolation.add_argument("--rabbitmq-vhost", default="/", metavar="VHOST",
                           help="the simulator's RabbitMQ vhost, created when missing (default: %(default)s)")
    isolation.add_argument("--postgres-database", default="medical_platform", metavar="NAME",
                           help="the simulator's PostgreSQL database, created when missing (default: %(default)s)")
    isolation.add_argument("--queue-include-vhost", metavar="REGEX",
                           help="only these vhosts in the queue exporter (its --include-vhost; default: every vhost)")
    commands = parser.add_subparsers(dest="stack_command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="start every component (again: starts only what is not running)")
    up.add_argument(
        "--wait", type=float, default=90.0, metavar="SECONDS",
        help="wait until Prometheus scrapes every target successfully (0: do not wait; default: %(default)s)",
    )
    up.add_argument(
        "--scrape-interval", type=_interval, default=scrape_jobs.SCRAPE_INTERVAL, metavar="DURATION",
        help="Prometheus's scrape and evaluation interval (default: the platform's %(default)s; tests use less)",
    )
    up.add_argument(
        "--tls", action="store_true",
        help="serve the package's exporters over TLS with basic auth (a self-signed certificate and a random "
        "password made in <state>/tls) and have Prometheus scrape them so",
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
