"""The alert rules under real promtool: the built rule files and their unit tests pass, and the unit
tests fail on rules that never fire, always fire, or miss a critical XID."""

import re
import subprocess
from dataclasses import replace

import pytest
import yaml

from alerts import (
    DOMAINS,
    alerts_by_domain,
    all_alerts,
    model,
    thresholds,
    unittests,
)
from medobs.core.output import to_yaml
from tests.conftest import REPO, require_binary

ALERTS = all_alerts()
BUILT = REPO / "build" / "prometheus"


def test_promtool_check_rules_passes_on_every_generated_rule_file():
    files = sorted(BUILT.glob("rules/alerts-*.yml"))
    assert len(files) == len(DOMAINS)
    result = subprocess.run([require_binary("promtool"), "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(DOMAINS)


def _promtool_on_mutated_rules(tmp_path, domain: str, mutate) -> subprocess.CompletedProcess:
    alerts = [replace(alert, expr=mutate(alert.expr)) for alert in alerts_by_domain()[domain]]
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / f"alerts-{domain}.yml").write_text(
        to_yaml({"groups": [model.rule_group(domain, alerts)]}, source="test")
    )
    tests = []
    for source in unittests.sources(domain):
        path = tmp_path / "tests" / f"{source.stem}.test.yml"
        path.write_text(yaml.safe_dump(unittests.render(source, alerts, f"../rules/alerts-{domain}.yml")))
        tests.append(str(path))
    return subprocess.run([require_binary("promtool"), "test", "rules", *tests], capture_output=True, text=True)


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_unit_tests_fail_when_the_rules_never_fire(tmp_path, domain):
    result = _promtool_on_mutated_rules(tmp_path, domain, lambda expr: f"({expr}) unless on() vector(1)")
    assert result.returncode != 0
    failing = set(re.findall(r"alertname: (\w+)", result.stdout + result.stderr))
    firing = {case.alertname for case in unittests.cases(domain) if case.fires}
    assert failing == firing


@pytest.mark.slow
@pytest.mark.parametrize("domain", list(DOMAINS))
def test_unit_tests_fail_when_the_rules_always_fire(tmp_path, domain):
    result = _promtool_on_mutated_rules(tmp_path, domain, lambda expr: f"({expr}) or on() vector(1)")
    assert result.returncode != 0
    assert "healthy:" in result.stdout + result.stderr


CRITICAL_XIDS = thresholds.DEFAULT.gpu.critical_xids
#: Application XIDs (13 graphics engine exception, 31 MMU fault, 43 stopped channel): a bug or a
#: killed process, not the GPU; alerts/tests/gpu.yml feeds them beside critical ones.
APPLICATION_XIDS = (13, 31, 43)


def _xid_regex(codes) -> str:
    return 'xid=~"' + "|".join(str(code) for code in codes) + '"'


@pytest.mark.parametrize("codes", [
    *[tuple(c for c in CRITICAL_XIDS if c != left_out) for left_out in CRITICAL_XIDS],
    *[(*CRITICAL_XIDS, added) for added in APPLICATION_XIDS],
], ids=lambda codes: "+".join(map(str, sorted(set(codes) ^ set(CRITICAL_XIDS)))))
def test_the_gpu_unit_tests_fail_when_a_critical_xid_is_missed_or_an_application_xid_pages(tmp_path, codes):
    assert _xid_regex(CRITICAL_XIDS) in next(a.expr for a in ALERTS if a.name == "GpuXidCriticalError")
    result = _promtool_on_mutated_rules(tmp_path, "gpu", lambda expr: expr.replace(_xid_regex(CRITICAL_XIDS), _xid_regex(codes)))
    assert result.returncode != 0
    assert set(re.findall(r"alertname: (\w+)", result.stdout + result.stderr)) == {"GpuXidCriticalError"}
