"""The promtool unit tests of the alerts: sources in ``alerts/tests/<domain>.yml`` (and
``<domain>-<topic>.yml``), rendered into ``build/prometheus/tests/alerts-<name>.test.yml``
next to the rules they test.

A source file is promtool's test format without ``rule_files`` (``evaluation_interval`` is
optional, 1m by default: the daily backup tests step by 10m), with two conventions:

- each test group's ``name`` starts with its kind: ``failure:`` (a realistic failure: the
  alert fires, and stays pending before its ``for``), ``healthy:`` or ``borderline:`` (series
  near the threshold that must stay silent);
- an expected alert gives its labels and its ``description`` (the templated text on-call
  reads, so the test checks the values it shows); the static annotations ``summary``,
  ``runbook_url`` and ``dashboard_url`` are filled in from the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts.model import Alert
from medobs import UserError, package_data

KINDS = ("failure", "healthy", "borderline")
EVALUATION_INTERVAL = "1m"
STATIC_ANNOTATIONS = ("summary", "runbook_url", "dashboard_url")


@dataclass(frozen=True)
class Case:
    """One ``alert_rule_test`` evaluation: which alert, in which kind of group, firing or not."""

    domain: str
    group: str
    kind: str
    alertname: str
    eval_time: str
    fires: bool


def source_dir() -> Path:
    """The folder of the test sources: package data (``alerts/tests/``)."""
    return package_data("alerts", "tests")


def sources(domain: str) -> list[Path]:
    """A domain's test sources: ``<domain>.yml`` and any ``<domain>-<topic>.yml``."""
    folder = source_dir()
    found = sorted(folder.glob(f"{domain}.yml")) + sorted(folder.glob(f"{domain}-*.yml"))
    if not found:
        raise UserError(f"alerts/tests/{domain}.yml is missing: every alert domain needs promtool unit tests")
    return found


def test_path(source: Path) -> str:
    """Where a source's rendered tests live under build/ (outside rules/, which Prometheus loads)."""
    return f"prometheus/tests/alerts-{source.stem}.test.yml"


def load(source: Path) -> dict[str, Any]:
    """A source file, checked for the conventions above."""
    try:
        document = yaml.safe_load(source.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{source}: not valid YAML: {str(error).splitlines()[0]}") from None
    if (
        not isinstance(document, dict)
        or not set(document) <= {"tests", "evaluation_interval"}
        or not isinstance(document.get("tests"), list)
    ):
        raise UserError(f"{source}: expected `tests:` (a list of test groups) and optionally `evaluation_interval:`")
    for group in document["tests"]:
        name = group.get("name", "")
        if name.split(":")[0] not in KINDS:
            raise UserError(f"{source}: test group {name!r} must be named `<kind>: ...` with kind in {KINDS}")
    return document


def cases(domain: str) -> list[Case]:
    found = []
    for source in sources(domain):
        for group in load(source)["tests"]:
            kind = group["name"].split(":")[0]
            for test in group.get("alert_rule_test", []):
                found.append(Case(
                    domain, group["name"], kind, test["alertname"], str(test["eval_time"]),
                    bool(test.get("exp_alerts")),
                ))
    return found


def _static_annotations(alerts: list[Alert], alertname: str, where: str) -> dict[str, str]:
    rendered = {
        tuple((key, alert.annotations[key]) for key in STATIC_ANNOTATIONS)
        for alert in alerts if alert.name == alertname
    }
    if not rendered:
        raise UserError(f"{where}: no alert named {alertname} in this domain")
    if len(rendered) > 1:
        raise UserError(f"{where}: the rules named {alertname} differ in {STATIC_ANNOTATIONS}")
    return dict(rendered.pop())


def render(source: Path, alerts: list[Alert], rule_file: str) -> dict[str, Any]:
    """The promtool test file of a source; ``rule_file`` is relative to the test file."""
    document = load(source)
    groups = []
    for group in document["tests"]:
        group = dict(group)
        tests = []
        for test in group.get("alert_rule_test", []):
            where = f"{source}: {group['name']}: {test['alertname']} at {test['eval_time']}"
            static = _static_annotations(alerts, test["alertname"], where)
            expected = []
            for alert in test.get("exp_alerts") or []:
                annotations = alert.get("exp_annotations", {})
                if "description" not in annotations:
                    raise UserError(f"{where}: an expected alert must give its description")
                expected.append({**alert, "exp_annotations": {**static, **annotations}})
            tests.append({**test, "exp_alerts": expected})
        group["alert_rule_test"] = tests
        groups.append(group)
    return {
        "rule_files": [rule_file],
        "evaluation_interval": document.get("evaluation_interval", EVALUATION_INTERVAL),
        "tests": groups,
    }
