"""Helpers of the SLO tests: compile specs with the CLI, run promtool on generated files."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from .conftest import free_port, medobs, require_binary


SLOTH_EXAMPLES = Path(__file__).parent / "data" / "sloth"


def sloth_examples() -> list[Path]:
    """Sloth's published example specs that compile: all but the plugin ones, which medobs refuses
    in one line."""
    from slo import spec

    found = []
    for path in sorted([*SLOTH_EXAMPLES.glob("*.yml"), *SLOTH_EXAMPLES.glob("*.yaml")]):
        try:
            spec.load(path, path.name)
        except spec.SpecError as error:
            assert "plugin" in str(error), error
            continue
        found.append(path)
    return found


def promtool(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("promtool"), *args], capture_output=True, text=True, timeout=timeout)


@contextmanager
def running_prometheus(root: Path, config: str, *extra: str) -> Iterator[str]:
    """A real Prometheus on a free loopback port with ``config`` and its TSDB under ``root``;
    yields its URL."""
    (root / "prometheus.yml").write_text(config)
    url = f"http://127.0.0.1:{free_port()}"
    log = (root / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [require_binary("prometheus"), f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
         f"--web.listen-address={url.removeprefix('http://')}", *extra],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(root / 'prometheus.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready within 60s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@contextmanager
def backfilled_prometheus(root: Path, openmetrics: str) -> Iterator[str]:
    """A real Prometheus serving ``openmetrics`` (backfilled with ``promtool tsdb
    create-blocks-from openmetrics``) from a TSDB under ``root``; yields its URL."""
    (root / "data.om").write_text(openmetrics)
    backfill = promtool("tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
                        str(root / "data.om"), str(root / "tsdb"))
    if backfill.returncode != 0:
        raise RuntimeError(f"backfill failed: {backfill.stderr}")
    with running_prometheus(root, "global: {}\n", "--storage.tsdb.retention.time=100y") as url:
        yield url


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    """Exit status 2 and one stderr line matching ``medobs slo: error: <pattern>``, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"^medobs slo: error: " + pattern, lines[0]), lines[0]


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def build(spec: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return medobs("slo", "build", str(spec), "--out", str(out), *extra, check=True)


def rule_group(rule_file: Path) -> dict[str, Any]:
    (group,) = yaml.safe_load(rule_file.read_text())["groups"]
    return group


def alert_rules(rule_file: Path, name: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if rule.get("alert") == name]


def run_test(folder: Path, rule_file: Path, tests: list[dict[str, Any]], name: str = "test.yml") -> subprocess.CompletedProcess:
    """promtool test rules on a hand-written test of ``rule_file``."""
    test = {"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": tests}
    path = folder / name
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return promtool("test", "rules", str(path))


AVAILABILITY_SPEC = """
version: prometheus/v1
service: shop
labels: {team: web}
slos:
  - name: availability
    objective: 99.9
    sli:
      availability:
        metric: http_requests_total
        status_label: code
        bad: "5.."
    alerting:
      name: ShopAvailabilityBudgetBurn
"""


#: An SLI whose result keeps the `service` label: the case that collided with the compiler's labels.
BY_SERVICE_SPEC = """
version: prometheus/v1
service: shop
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum by (service) (rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum by (service) (rate(http_requests_total[{{.window}}]))
    alerting:
      name: ShopAvailabilityBudgetBurn
"""
