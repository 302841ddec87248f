"""`medobs rules`: list, check and test, on fresh renderings and on broken build folders."""

import os
import re
import shutil
import sys

import pytest

from alerts import all_alerts
from tests.conftest import REPO, medobs


def test_list_shows_every_alert_with_its_severity_and_for():
    listing = medobs("rules", "list", check=True).stdout
    for alert in all_alerts():
        assert re.search(rf"^{alert.name}\s+\w+\s+{alert.severity}\s+{alert.for_}\s", listing, flags=re.M), alert.name


@pytest.mark.slow
def test_check_and_test_pass_on_the_current_definitions():
    check = medobs("rules", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("SUCCESS") >= 7 + 2  # every alert rule file, both Alertmanager files
    test = medobs("rules", "test")
    assert test.returncode == 0, test.stdout + test.stderr
    assert re.search(r"Alertmanager routes: (\d+) of \1 cases as documented", test.stdout)


@pytest.fixture
def build_copy(tmp_path):
    target = tmp_path / "build"
    shutil.copytree(REPO / "build", target)
    return target


def test_check_fails_on_a_broken_rule(build_copy):
    rules = build_copy / "prometheus" / "rules" / "alerts-redis.yml"
    rules.write_text(rules.read_text().replace("redis_up{job=\"redis\"} == 0", "redis_up{job=\"redis\" == 0", 1))
    result = medobs("rules", "check", "--build-dir", str(build_copy))
    assert result.returncode == 1
    assert "alerts-redis.yml" in result.stdout and "FAILED" in result.stdout


@pytest.mark.slow
def test_test_fails_when_an_expected_description_is_wrong(build_copy):
    tests = build_copy / "prometheus" / "tests" / "alerts-gpu.test.yml"
    tests.write_text(tests.read_text().replace("has been at 91 °C", "has been at 19 °C"))
    result = medobs("rules", "test", "--build-dir", str(build_copy))
    assert result.returncode == 1
    assert "GpuTemperatureHigh" in result.stdout


@pytest.mark.slow
def test_test_fails_when_a_route_changes(build_copy):
    config = build_copy / "alertmanager" / "alertmanager.yml"
    config.write_text(config.read_text().replace("receiver: paging", "receiver: ticket"))
    result = medobs("rules", "test", "--build-dir", str(build_copy))
    assert result.returncode == 1
    assert "route FAILED: alertmanager.yml" in result.stdout


def test_a_missing_build_folder_is_one_line(tmp_path):
    result = medobs("rules", "check", "--build-dir", str(tmp_path / "nothing"))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "has no prometheus/rules/" in line and "medobs build --out" in line


def test_a_missing_promtool_says_what_to_install():
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    result = medobs("rules", "check", env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "`promtool` not found: apt install prometheus" in line
