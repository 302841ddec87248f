"""The medobs command explains itself and fails in one clear line."""

import shlex
import subprocess
import sys

import pytest

from tests.conftest import medobs
from tests.unit.test_cli import all_command_paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "medobs")
def test_every_command_has_help(path):
    result = medobs(*path, "--help")
    assert result.returncode == 0
    assert "usage: medobs" in result.stdout
    assert len(result.stdout.splitlines()) > 3


@pytest.mark.parametrize("args", [["--no-such-flag"], ["build", "--frobnicate"], ["stack", "up", "--nope"], ["nosuch"]])
def test_usage_error_is_one_line(args):
    result = medobs(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_missing_build_dir_is_one_clear_line(tmp_path):
    state = tmp_path / "state"
    result = medobs("stack", "--state-dir", str(state), "--port-offset", "19000", "--build-dir", str(tmp_path / "nothing"), "up")
    assert result.returncode == 2
    assert not list((state / "pids").glob("*.json")), "a failed `up` left components running"
    assert result.stderr.strip().splitlines() == [
        f"medobs stack: error: {tmp_path / 'nothing' / 'prometheus' / 'prometheus-native.yml'} is missing: "
        f"run `medobs build --out {tmp_path / 'nothing'}` first, or leave --build-dir out"
    ]


@pytest.mark.parametrize("exporter", ["gpu", "queue", "inference"])
def test_an_exporter_runs_without_the_other_commands_dependencies(exporter):
    """A sidecar's memory holds its exporter, not the stack, the simulator or grafanalib."""
    heavy = ["psycopg", "grafanalib", "medobs.stack", "medobs.simulator", "dashboards", "slo", "medobs.build"]
    script = (
        "import sys\n"
        "from medobs.cli import main\n"
        "try:\n"
        f"    main(['exporter', {exporter!r}, '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([name for name in {heavy!r} if name in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_reader_that_goes_away_is_no_traceback():
    command = f"{shlex.quote(sys.executable)} -m medobs.cli rules list | head -1"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("ALERT")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
