"""Backup freshness for node_exporter's textfile collector (``medobs backup-metrics``).

The platform's pg_dump script runs through it (or reports a run it already finished), and it
writes ``<textfile dir>/medobs_backup_<database>.prom`` atomically: a temporary file in the same
folder, renamed over the old one, so node_exporter never reads half a file::

    # HELP medobs_backup_last_success_timestamp_seconds Unix time at which the last successful backup finished.
    # TYPE medobs_backup_last_success_timestamp_seconds gauge
    medobs_backup_last_success_timestamp_seconds{database="medical_db"} 1.7547e+09
    # HELP medobs_backup_duration_seconds How long the last backup ran.
    # TYPE medobs_backup_duration_seconds gauge
    medobs_backup_duration_seconds{database="medical_db"} 312.4
    # HELP medobs_backup_size_bytes Size of the last backup's output.
    # TYPE medobs_backup_size_bytes gauge
    medobs_backup_size_bytes{database="medical_db"} 4.2e+09
    # HELP medobs_backup_exit_code Exit status of the last backup run (0 is success).
    # TYPE medobs_backup_exit_code gauge
    medobs_backup_exit_code{database="medical_db"} 0

A failed run updates duration, size and exit code and keeps the previous success timestamp
(absent until a first success), so that PostgresBackupTooOld measures the age of the last
backup that can actually be restored.

The command runs in its own process group. SIGTERM or SIGINT sent to the wrapper goes to that
whole group (a pipeline's ``pg_dump`` and ``gzip`` included); whatever is still running
:data:`KILL_AFTER_SECONDS` later is killed, and the run is recorded as failed with exit code
128 + the signal's number, which is also the wrapper's exit status.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from medobs import UserError
from medobs.core.catalog import platform
from medobs.core.files import read_text, write_atomic

#: Debian's node_exporter reads its textfile collector from here.
DEFAULT_TEXTFILE_DIR = Path("/var/lib/prometheus/node-exporter")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: Recorded when the command could not be started, or left no artifact while exiting 0.
NOT_FOUND, NOT_EXECUTABLE, NO_ARTIFACT = 127, 126, 1
#: Signals the wrapper passes on to the backup command's process group.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How long the command's processes have after a forwarded signal before they are killed.
KILL_AFTER_SECONDS = 10.0


@dataclass(frozen=True)
class Run:
    """One backup run, as the metrics record it."""

    database: str
    exit_code: int
    duration_seconds: float
    size_bytes: float
    finished_at: float

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def textfile_path(directory: Path, database: str) -> Path:
    """The file a database's metrics go to (checked before the backup runs, not after)."""
    if not _DATABASE_NAME.fullmatch(database):
        raise UserError(f"--database {database!r}: use letters, digits, '_', '.' and '-' only")
    if not directory.is_dir():
        raise UserError(f"--textfile-dir {directory} is not a folder (node_exporter's --collector.textfile.directory)")
    return directory / f"medobs_backup_{database}.prom"


def previous_success(path: Path) -> float | None:
    """The success timestamp an earlier run wrote to ``path``, if any (an unreadable file has none)."""
    try:
        text = read_text(path, what="previous textfile")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == platform.BACKUP_LAST_SUCCESS.name:
                    return sample.value
    except (UserError, ValueError):
        pass
    return None


class _RunCollector:
    def __init__(self, run: Run, last_success: float | None) -> None:
        self.run, self.last_success = run, last_success

    def collect(self) -> Iterator[Metric]:
        values = [
            (platform.BACKUP_LAST_SUCCESS, self.last_success),
            (platform.BACKUP_DURATION, self.run.duration_seconds),
            (platform.BACKUP_SIZE, self.run.size_bytes),
            (platform.BACKUP_EXIT_CODE, self.run.exit_code),
        ]
        for entry, value in values:
            if value is None:
                continue
            family = GaugeMetricFamily(entry.name, entry.help, labels=["database"])
            family.add_metric([self.run.database], value)
            yield family


def record(path: Path, run: Run) -> None:
    """Write the run's metrics to ``path`` atomically (a temporary file beside it, renamed)."""
    last_success = run.finished_at if run.succeeded else previous_success(path)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(run, last_success))
    try:
        write_atomic(path, generate_latest(registry))
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}") from None


def artifact_size(artifact: Path | None) -> float:
    try:
        return float(artifact.stat().st_size) if artifact else 0.0
    except OSError:
        return 0.0


def finished_run(database: str, exit_code: int, duration_seconds: float, artifact: Path | None) -> Run:
    """A run the backup script finished itself and now reports."""
    return Run(database, exit_code, duration_seconds, artifact_size(artifact), time.time())


def run_backup(database: str, command: list[str], artifact: Path | None) -> tuple[Run, str]:
    """Run the backup command (its output passes through); returns the run and, if it could
    not start, why."""
    started = time.monotonic()
    problem = ""
    try:
        child = subprocess.Popen(command, process_group=0)
    except FileNotFoundError:
        exit_code, problem = NOT_FOUND, f"{command[0]}: command not found"
    except PermissionError:
        exit_code, problem = NOT_EXECUTABLE, f"{command[0]}: permission denied"
    else:
        with _forwarding_signals(child.pid) as received:
            exit_code = child.wait()
        if received:  # the run was stopped: a failure, whatever the command made of the signal
            exit_code = 128 + received[0]
    if exit_code < 0:  # killed by a signal, as a shell reports it
        exit_code = 128 - exit_code
    size = artifact_size(artifact)
    if exit_code == 0 and artifact is not None and size == 0:
        exit_code, problem = NO_ARTIFACT, f"the command exited 0 but left no backup at {artifact}"
    return Run(database, exit_code, time.monotonic() - started, size, time.time()), problem


@contextlib.contextmanager
def _forwarding_signals(group: int) -> Iterator[list[int]]:
    """While active, :data:`FORWARDED_SIGNALS` go to the process group ``group`` and are listed in
    the list it gives; :data:`KILL_AFTER_SECONDS` after the first, and on leaving, the group's
    remaining processes are killed."""
    received: list[int] = []
    deadline = threading.Timer(KILL_AFTER_SECONDS, _signal_group, (group, signal.SIGKILL))
    deadline.daemon = True

    def forward(number: int, _frame: object) -> None:
        received.append(number)
        _signal_group(group, number)
        if len(received) == 1:
            deadline.start()

    previous = {number: signal.signal(number, forward) for number in FORWARDED_SIGNALS}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if received:
            deadline.cancel()
            _signal_group(group, signal.SIGKILL)  # what outlived its leader (a pipeline's other end)


def _signal_group(group: int, number: int) -> None:
    try:
        os.killpg(group, number)
    except ProcessLookupError:  # every process of the group has ended
        pass
