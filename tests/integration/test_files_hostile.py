"""Hostile files handed to the commands (outside ``medobs slo``, whose specs have their own tests):
bytes that are not UTF-8, files far too large, JSON nested past Python's recursion limit, and
documents of the wrong shape each give one line and exit status 2, never a traceback; and the
writer underneath every command replaces a file in one step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from alerts import unittests
from medobs import UserError
from medobs.core.files import READ_LIMIT_BYTES, read_text, temporary_path, write_atomic
from medobs.core.owned import FORMAT
from tests.conftest import medobs

NOT_UTF8 = b'{"title": "caf\xe9", "panels": []}'  # Latin-1, as an editor on another machine saves it


def huge(path: Path) -> Path:
    """A file one byte over the read limit (sparse: it costs no disk)."""
    with path.open("wb") as stream:
        stream.truncate(READ_LIMIT_BYTES + 1)
    return path


def one_line(result, command: str, *fragments: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"medobs {command}: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


# --- read_text and write_atomic, the one way every command reads and writes --------------------------


def test_read_text_refuses_what_is_not_a_readable_utf8_file_in_one_line(tmp_path):
    (tmp_path / "latin1.txt").write_bytes(NOT_UTF8)
    with pytest.raises(UserError, match=r"^the spec .*latin1.txt is not UTF-8 text \(byte 14\)$"):
        read_text(tmp_path / "latin1.txt", what="spec")
    with pytest.raises(UserError, match=r"is larger than 16 MiB$"):
        read_text(huge(tmp_path / "huge.txt"))
    with pytest.raises(UserError, match=r"^cannot read the file .*missing.txt: No such file or directory$"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(UserError, match=r"^cannot read the file .*: Is a directory$"):
        read_text(tmp_path)
    (tmp_path / "ok.txt").write_text("grüße\n")
    assert read_text(tmp_path / "ok.txt") == "grüße\n"


def test_write_atomic_replaces_the_file_in_one_step_and_a_failure_leaves_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "out.yml"
    write_atomic(target, "first\n")
    inode = target.stat().st_ino
    write_atomic(target, b"second\n", mode=0o600)
    assert target.read_text() == "second\n" and target.stat().st_ino != inode  # a new file, renamed over
    assert target.stat().st_mode & 0o777 == 0o600

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_atomic(target, "third, never whole\n")
    assert target.read_text() == "second\n"
    assert not temporary_path(target).exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.yml"]


# --- dashboards lint | check | publish: dashboard JSON files -----------------------------------------


@pytest.mark.parametrize(("content", "fragment"), [
    (NOT_UTF8, "is not UTF-8 text (byte 14)"),
    (None, "is larger than 16 MiB"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON: nested too deeply"),
    (b'{"title": "x", "panels": {"a": 1}}', "not a Grafana dashboard: panels is an object, not a list"),
    (b'{"title": "x", "panels": [{"targets": "up"}]}', "panels[0].targets is a string, not a list"),
    (b'{"title": "x", "panels": [{"type": "row", "panels": [{"targets": [3]}]}]}',
     "panels[0].panels[0].targets[0] is a number, not an object"),
    (b'{"title": "x", "templating": {"list": [null]}}', "templating.list[0] is null, not an object"),
    (b'{"title": "x", "tags": "medobs"}', "tags is a string, not a list"),
])
def test_a_hostile_dashboard_file_is_one_line(tmp_path, content, fragment):
    board = tmp_path / "board.json"
    if content is None:
        huge(board)
    else:
        board.write_bytes(content)
    one_line(medobs("dashboards", "lint", str(board)), "dashboards", str(board), fragment)


# --- medobs build: the manifest and the run record in the output folder ------------------------------


@pytest.mark.parametrize(("name", "content"), [
    (".medobs-build.json", b"\xff\xfe{}"),
    (".medobs-build.json", None),
    (".medobs-build.json", json.dumps({"format": FORMAT, "files": {"a.yml": 1}}).encode()),
    (".medobs-build.json", json.dumps({"format": FORMAT, "files": {"../../etc/passwd": "0" * 64}}).encode()),
    (".medobs-build.json", b"[" * 100_000),
    (".medobs-build.pending.json", json.dumps({"format": FORMAT, "files": {"a.yml": "not a list"}}).encode()),
])
def test_a_hostile_manifest_or_run_record_is_one_line_and_nothing_is_written(tmp_path, name, content):
    if content is None:
        huge(tmp_path / name)
    else:
        (tmp_path / name).write_bytes(content)
    result = medobs("build", "--out", str(tmp_path))
    one_line(result, "build", str(tmp_path / name), "move it away")
    assert [p.name for p in tmp_path.iterdir()] == [name]


# --- secrets read from files -------------------------------------------------------------------------


@pytest.mark.parametrize("content", [NOT_UTF8, None])
def test_a_hostile_token_file_is_one_line_without_its_content(tmp_path, content):
    token_file = tmp_path / "token"
    if content is None:
        huge(token_file)
    else:
        token_file.write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    env.update(GRAFANA_URL="http://127.0.0.1:1", GRAFANA_TOKEN_FILE=str(token_file))
    result = medobs("dashboards", "publish", env=env)
    line = one_line(result, "dashboards", f"the secret file {token_file}")
    assert "caf" not in line


# --- backup-metrics: the previous textfile ------------------------------------------------------------


@pytest.mark.parametrize("content", [b"\xff\xfe garbage \x00", None])
def test_a_hostile_previous_textfile_is_replaced_not_fatal(tmp_path, content):
    textfile = tmp_path / "medobs_backup_medical_db.prom"
    if content is None:
        huge(textfile)
    else:
        textfile.write_bytes(content)
    result = medobs("backup-metrics", "--database", "medical_db", "--textfile-dir", str(tmp_path), "--", "true")
    assert result.returncode == 0, result.stderr
    text = textfile.read_text()
    assert 'medobs_backup_exit_code{database="medical_db"} 0.0' in text
    assert [p.name for p in tmp_path.iterdir()] == [textfile.name]


# --- YAML: Python tags, billion laughs, names that climb out of the output folder -------------------


PYTHON_TAG = '!!python/object/apply:os.system ["touch {marker}"]\n'


def billion_laughs(key: str) -> str:
    """Nine levels of nine aliases each (387 million strings if expanded), under ``key``."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        name, below = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{below}'] * 9)}]")
    return "\n".join([*lines, f"{key}: *i"]) + "\n"


@pytest.mark.parametrize(("command", "key"), [
    (["build", "--check", "--config"], "namespace"),
    (["slo", "explain"], "service"),
])
def test_yaml_loaders_refuse_python_tags_and_billion_laughs_in_one_line(tmp_path, command, key):
    marker = tmp_path / "pwned"
    (tmp_path / "tag.yml").write_text(PYTHON_TAG.format(marker=marker))
    (tmp_path / "laughs.yml").write_text(billion_laughs(key))
    for name in ("tag.yml", "laughs.yml"):
        result = medobs(*command, str(tmp_path / name), timeout=30)
        assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and str(tmp_path / name) in result.stderr
    assert not marker.exists()


def test_the_alert_test_loader_refuses_python_tags(tmp_path):
    marker = tmp_path / "pwned"
    source = tmp_path / "platform.yml"
    source.write_text(PYTHON_TAG.format(marker=marker))
    with pytest.raises(UserError, match="not valid YAML"):
        unittests.load(source)
    source.write_bytes(NOT_UTF8)
    with pytest.raises(UserError, match="not UTF-8"):
        unittests.load(source)
    assert not marker.exists()


def test_an_slo_named_to_climb_out_of_the_output_folder_is_refused(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: prometheus/v1\nservice: ../../evil\nslos: []\n")
    result = medobs("slo", "build", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "is not a name" in result.stderr, result.stderr
    assert not list(tmp_path.parent.rglob("*evil*"))
