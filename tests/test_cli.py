"""The medobs command explains itself and fails in one clear line."""

import pytest

from medobs.cli import parser

from .conftest import medobs


def all_command_paths() -> list[list[str]]:
    paths = []

    def walk(p, prefix):
        paths.append(prefix)
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    walk(sub, prefix + [name])

    walk(parser(), [])
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "medobs")
def test_every_command_has_help(path):
    result = medobs(*path, "--help")
    assert result.returncode == 0
    assert "usage: medobs" in result.stdout
    assert len(result.stdout.splitlines()) > 3


def test_groups_exist():
    """Every command group of the package, registered by the module that owns it."""
    names = {p[0] for p in all_command_paths() if p}
    assert names == {"build", "dashboards", "stack", "exporter", "rules", "backup-metrics", "slo", "simulate"}


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
        "run `make build` first (or pass --build-dir)"
    ]
