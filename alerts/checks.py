"""promtool and amtool, run on built files (``medobs rules check`` / ``medobs rules test``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from alerts.alertmanager import RouteCase
from medobs import UserError

_INSTALL = {"promtool": "apt install prometheus", "amtool": "apt install prometheus-alertmanager"}


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"`{name}` not found: {_INSTALL[name]}")
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def check_rules(files: list[Path]) -> subprocess.CompletedProcess:
    """``promtool check rules`` (syntax, templates, duplicate-rule lint)."""
    return _run([binary("promtool"), "check", "rules", *map(str, files)])


def test_rules(files: list[Path]) -> subprocess.CompletedProcess:
    """``promtool test rules`` on unit-test files."""
    return _run([binary("promtool"), "test", "rules", *map(str, files)])


def check_config(files: list[Path]) -> subprocess.CompletedProcess:
    """``amtool check-config``."""
    return _run([binary("amtool"), "check-config", *map(str, files)])


def route_receivers(config: Path, labels: dict[str, str]) -> list[str]:
    """The receivers Alertmanager's routing tree picks for an alert with ``labels``."""
    result = _run([
        binary("amtool"), "config", "routes", "test", f"--config.file={config}",
        *(f"{name}={value}" for name, value in sorted(labels.items())),
    ])
    if result.returncode != 0:
        raise UserError(f"amtool config routes test on {config}: {result.stderr.strip().splitlines()[-1]}")
    return result.stdout.strip().split(",")


def route_failures(config: Path, cases: tuple[RouteCase, ...]) -> list[str]:
    """One line per case the configuration routes elsewhere than documented."""
    failures = []
    for case in cases:
        got = route_receivers(config, case.labels)
        if got != [case.receiver]:
            failures.append(f"{config.name}: {case.labels} went to {got}, expected [{case.receiver!r}] ({case.why})")
    return failures
