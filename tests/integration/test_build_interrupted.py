"""``medobs build --out DIR`` killed with SIGKILL at 20 random points: every generated file is the
previous run's or the new one's (never truncated, never a mix), ``build --check`` passes or names
the interrupted run in one line, and a normal run afterwards converges."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from medobs import build, cli
from medobs.core import site
from tests.conftest import REPO

KILLS = 20
SEED = 18  # the number: the same delays on every run
#: A site whose output differs from the default's in most files (docs/site-config.md).
OTHER_SITE = "namespace: imaging-b\ncluster: b\nkube_prometheus_stack:\n  scrapes_cluster: true\n"

pytestmark = pytest.mark.slow


def medobs_build(*args: str) -> list[str]:
    return [sys.executable, "-m", "medobs.cli", "build", *args]


def generated(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` but the temporary files a killed write may leave."""
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in out.rglob("*") if path.is_file() and not path.name.endswith(".medobs-tmp")
    }


def recorded_pid(record: Path) -> int | None:
    """The pid in a run record (written atomically: whole or absent)."""
    try:
        return json.loads(record.read_bytes()).get("pid")
    except FileNotFoundError:
        return None


def timed_run(command: list[str]) -> float:
    """Run ``command`` to its end; how long it took."""
    started = time.monotonic()
    subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def stop_while_replacing(run: subprocess.Popen, record: Path, mixed: Callable[[], bool], extra_steps: int) -> None:
    """Freeze ``run`` (SIGSTOP) part-way through replacing files: once its run record is there, let
    it go on in short steps, stopped between them, until ``mixed()`` holds, then ``extra_steps``
    more. Stopped, the process cannot run ahead of the check, however loaded the machine is."""
    while recorded_pid(record) != run.pid and run.poll() is None:
        time.sleep(0.001)
    while run.poll() is None:
        os.kill(run.pid, signal.SIGSTOP)
        if mixed():
            if extra_steps == 0:
                return
            extra_steps -= 1
        os.kill(run.pid, signal.SIGCONT)
        time.sleep(0.0005)


def test_a_build_killed_at_random_points_always_leaves_a_consistent_folder(tmp_path, capsys):
    site_file = tmp_path / "site.yml"
    site_file.write_text(OTHER_SITE)
    out = tmp_path / "out"
    folder = build.folder(out)
    # The two outputs a run may be going from or to, as {path: bytes}, each with its manifest.
    outputs = []
    for config in (site.DEFAULT, site.load(site_file)):
        files = build.generate(config)
        encoded = {path: text.encode() for path, text in files.items()}
        outputs.append({**encoded, folder.manifest_path.name: folder.manifest_text(files).encode()})
    configs = ([], ["--config", str(site_file)])
    differing = [p for p in outputs[0] if outputs[0][p] != outputs[1].get(p)]
    assert len(differing) > 10, "the two sites must differ in many files for the kills to land mid-write"

    duration = timed_run(medobs_build("--out", str(out)))

    def sources() -> set[int]:
        """Which of the two outputs the differing files now hold (both: killed mid-write)."""
        files = generated(out)
        return {i for path in differing for i in (0, 1) if files.get(path) == outputs[i].get(path)}

    rng = random.Random(SEED)
    mid_write = 0  # kills that left some files old and others new
    for kill in range(KILLS):
        target = (kill + 1) % 2  # to the other site, then back: every run has files to replace
        run = subprocess.Popen(medobs_build("--out", str(out), *configs[target]), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill % 2:  # anywhere in the run, start to end
            time.sleep(rng.uniform(0, 1.1) * duration)
        else:  # while it replaces files (a short part of the run, at its end)
            stop_while_replacing(run, folder.pending_path, lambda: sources() == {0, 1}, rng.randint(0, 3))
        run.kill()
        run.wait()

        files = generated(out)
        assert set(files) <= {*outputs[0], *outputs[1], folder.pending_path.name}
        for path in {*outputs[0], *outputs[1]}:  # absent only where one of the two has no such file
            assert files.get(path) in (outputs[0].get(path), outputs[1].get(path)), f"kill {kill}: {path} is a mix"

        mid_write += sources() == {0, 1}
        if folder.pending_path.exists():
            assert cli.main(["build", "--check", "--out", str(out), *configs[target]]) == 1
            printed = capsys.readouterr()
            (line,) = printed.err.splitlines()
            assert printed.out == "" and "a `medobs build` run (pid" in line
            assert "was interrupted before it finished" in line
        else:  # killed before it changed anything, or after it finished: the manifest says which
            manifest = files[folder.manifest_path.name]
            current = next(i for i in (0, 1) if manifest == outputs[i][folder.manifest_path.name])
            assert {p: files[p] for p in outputs[current]} == outputs[current], f"kill {kill}"
            assert cli.main(["build", "--check", "--out", str(out), *configs[current]]) == 0, capsys.readouterr().out
            capsys.readouterr()
    # Every other kill is stopped mid-write; a run that raced to its end while this test was
    # descheduled between two steps may spoil a couple of them.
    assert mid_write >= KILLS // 2 - 2, f"only {mid_write} of {KILLS} kills landed while files were being replaced"

    subprocess.run(medobs_build("--out", str(out)), cwd=REPO, check=True, capture_output=True)
    assert cli.main(["build", "--check", "--out", str(out)]) == 0
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(outputs[0])
