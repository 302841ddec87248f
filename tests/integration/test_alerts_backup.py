"""`medobs backup-metrics`: the textfile the platform's pg_dump script leaves for node_exporter,
checked with real pg_dump against the local PostgreSQL and with promtool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts import backup
from medobs.core.catalog import platform
from tests.conftest import REPO, medobs, require_binary

#: The wrapper line docs/backup.md shows for the seed's backup script.
WRAPPER = (
    'medobs backup-metrics --database medical_db --artifact "$FILE" -- \\\n'
    "  bash -o pipefail -c 'pg_dump -U postgres medical_db | gzip > \"$1\" "
    "&& aws s3 cp \"$1\" s3://medical-backups/postgres/' _ \"$FILE\""
)


def samples(path) -> dict[str, float]:
    """Sample name -> value of a textfile (one database per file)."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


@pytest.fixture
def database():
    """A temporary PostgreSQL database with one table, dropped afterwards."""
    name = f"medobs_backup_{uuid.uuid4().hex[:8]}"
    psql = [require_binary("psql"), "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    subprocess.run([*psql, "-c", f"create database {name}"], check=True)
    subprocess.run([*psql, "-d", name, "-c", "create table studies (id serial primary key, uid text); "
                    "insert into studies (uid) select md5(i::text) from generate_series(1, 2000) i"], check=True)
    yield name
    subprocess.run([*psql, "-c", f"drop database {name}"], check=True)


def run_wrapper(tmp_path, database_name: str, artifact) -> subprocess.CompletedProcess:
    """The documented wrapper line, with the test's database and without the S3 upload."""
    script = (
        f'medobs backup-metrics --database {database_name} --textfile-dir {tmp_path} --artifact "$FILE" -- '
        f"bash -o pipefail -c 'pg_dump -h 127.0.0.1 -U postgres {database_name} | gzip > \"$1\"' _ \"$FILE\""
    )
    env = {**os.environ, "FILE": str(artifact), "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)


def test_the_backup_page_shows_the_wrapper_line():
    assert WRAPPER in (REPO / "docs" / "backup.md").read_text()


def test_a_real_pg_dump_is_recorded_then_a_failed_run_keeps_the_last_success(tmp_path, database):
    artifact = tmp_path / "dump.sql.gz"
    before = time.time()
    ok = run_wrapper(tmp_path, database, artifact)
    assert ok.returncode == 0, ok.stderr
    textfile = tmp_path / f"medobs_backup_{database}.prom"
    first = samples(textfile)
    assert before <= first[platform.BACKUP_LAST_SUCCESS.name] <= time.time()
    assert first[platform.BACKUP_EXIT_CODE.name] == 0
    assert first[platform.BACKUP_SIZE.name] == artifact.stat().st_size > 1000
    assert 0 < first[platform.BACKUP_DURATION.name] < 60
    lint = subprocess.run([require_binary("promtool"), "check", "metrics"], input=textfile.read_text(),
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    failed = run_wrapper(tmp_path, f"{database}_missing", tmp_path / "missing.sql.gz")
    assert failed.returncode == 1  # pg_dump's status, through pipefail
    second = samples(tmp_path / f"medobs_backup_{database}_missing.prom")
    assert second[platform.BACKUP_EXIT_CODE.name] == 1
    assert platform.BACKUP_LAST_SUCCESS.name not in second  # never succeeded

    again = run_wrapper(tmp_path, database, tmp_path / "unwritable" / "dump.sql.gz")
    assert again.returncode == 1
    third = samples(textfile)
    assert third[platform.BACKUP_EXIT_CODE.name] == 1
    assert third[platform.BACKUP_LAST_SUCCESS.name] == first[platform.BACKUP_LAST_SUCCESS.name]


def test_the_file_is_replaced_atomically_and_leaves_no_temporary_file(tmp_path):
    args = ["backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path)]
    medobs(*args, "--", "true", check=True)
    textfile = tmp_path / "medobs_backup_medical_db.prom"
    first_inode = textfile.stat().st_ino
    medobs(*args, "--", "true", check=True)
    assert textfile.stat().st_ino != first_inode  # a new file renamed over the old one
    assert [p.name for p in tmp_path.iterdir()] == [textfile.name]


def test_a_killed_backup_records_the_shells_status(tmp_path):
    result = medobs("backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path),
                    "--", "sh", "-c", "kill -TERM $$")
    assert result.returncode == 143
    assert samples(tmp_path / "medobs_backup_medical_db.prom")[platform.BACKUP_EXIT_CODE.name] == 143


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def outlives(pid: int, seconds: float = 5.0) -> bool:
    """Whether ``pid`` is still alive ``seconds`` after the wrapper returned: a SIGKILLed process
    needs the scheduler once more to end, which on a loaded machine is not instant."""
    give_up = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > give_up:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_wrapper_stops_its_whole_command_and_records_a_failed_run(tmp_path, stop):
    args = ["backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path)]
    medobs(*args, "--", "true", check=True)
    textfile = tmp_path / "medobs_backup_medical_db.prom"
    last_success = samples(textfile)[platform.BACKUP_LAST_SUCCESS.name]
    pids = tmp_path / "pids"
    # A pipeline, as the documented wrapper line runs: the shell and both ends must go.
    script = f"sleep 300 | (echo $BASHPID >> {pids}; sleep 300) & echo $! >> {pids}; echo $$ >> {pids}; wait"
    wrapper = subprocess.Popen([sys.executable, "-m", "medobs.cli", *args, "--", "bash", "-c", script],
                               cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while (len(pids.read_text().split()) if pids.exists() else 0) < 3:
        assert time.monotonic() < deadline and wrapper.poll() is None, "the command did not start"
        time.sleep(0.05)
    command_pids = [int(pid) for pid in pids.read_text().split()]
    assert all(alive(pid) for pid in command_pids)
    wrapper.send_signal(stop)
    _, stderr = wrapper.communicate(timeout=20)
    assert wrapper.returncode == 128 + stop, stderr
    assert f"failed (exit code {128 + stop})" in stderr and "Traceback" not in stderr
    got = samples(textfile)
    assert got[platform.BACKUP_EXIT_CODE.name] == 128 + stop
    assert got[platform.BACKUP_LAST_SUCCESS.name] == last_success  # a stopped run is no success
    assert not [pid for pid in command_pids if outlives(pid)], "a process of the backup command outlived the wrapper"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([textfile.name, pids.name])


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "KILL_AFTER_SECONDS", 0.5)
    started = tmp_path / "started"
    pids = tmp_path / "pids"

    def stop_the_wrapper_once_the_command_runs() -> None:  # as `systemctl stop` would
        while not started.exists():
            time.sleep(0.01)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_the_wrapper_once_the_command_runs)
    stopper.start()
    script = f"trap '' TERM; sleep 60 & echo $! > {pids}; touch {started}; wait"
    began = time.monotonic()
    run, problem = backup.run_backup("medical_db", ["bash", "-c", script], None)
    stopper.join()
    assert run.exit_code == 128 + signal.SIGTERM and problem == ""
    assert time.monotonic() - began < 10  # not the 60 s the command wanted
    assert not outlives(int(pids.read_text()))


def test_record_mode_reports_a_run_the_script_finished(tmp_path):
    artifact = tmp_path / "dump.sql.gz"
    artifact.write_bytes(b"x" * 4096)
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    result = medobs("backup-metrics", "--database", "medical_db", "--textfile-dir", str(textfile_dir),
                    "--exit-code", "0", "--duration", "312.5", "--artifact", str(artifact))
    assert result.returncode == 0, result.stderr
    got = samples(textfile_dir / "medobs_backup_medical_db.prom")
    assert got[platform.BACKUP_DURATION.name] == 312.5
    assert got[platform.BACKUP_SIZE.name] == 4096
    assert got[platform.BACKUP_EXIT_CODE.name] == 0


def test_a_garbled_previous_file_is_replaced_not_fatal(tmp_path):
    (tmp_path / "medobs_backup_medical_db.prom").write_text("this is { not the text format\n")
    result = medobs("backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path), "--", "false")
    assert result.returncode == 1
    got = samples(tmp_path / "medobs_backup_medical_db.prom")
    assert got[platform.BACKUP_EXIT_CODE.name] == 1
    assert platform.BACKUP_LAST_SUCCESS.name not in got


def one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("medobs backup-metrics: error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in line


def test_a_missing_command_is_recorded_as_127_and_reported_in_one_line(tmp_path):
    result = medobs("backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path),
                    "--", "no-such-backup-tool", "--all")
    one_line_error(result, "no-such-backup-tool: command not found")
    assert samples(tmp_path / "medobs_backup_medical_db.prom")[platform.BACKUP_EXIT_CODE.name] == 127


def test_exit_zero_without_the_artifact_counts_as_failed(tmp_path):
    result = medobs("backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path),
                    "--artifact", str(tmp_path / "never-written.sql.gz"), "--", "true")
    one_line_error(result, "exited 0 but left no backup at")
    got = samples(tmp_path / "medobs_backup_medical_db.prom")
    assert got[platform.BACKUP_EXIT_CODE.name] == 1
    assert platform.BACKUP_LAST_SUCCESS.name not in got


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--textfile-dir", "/nonexistent/textfile", "--", "true"], "--textfile-dir /nonexistent/textfile is not a folder"),
        (["--exit-code", "0"], "--exit-code needs --duration"),
        (["--exit-code", "0", "--duration", "1", "--", "true"], "not both"),
        ([], "give the backup command after --"),
        (["--database", "medical db; rm", "--", "true"], "use letters, digits"),
    ],
)
def test_usage_mistakes_are_one_line(tmp_path, args, fragment):
    base = ["backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path)]
    result = medobs(*base, *args)
    one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing was written
