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
  ``runbook_url`` and ``dashboard_url`` are filled in from the rule, and so is the ``namespace``
  label every rule sets (the site's) unless the expected alert gives one.

The sources are written for the default site (:data:`SEED`: namespace ``medical-platform``, medobs'
own job names ``cadvisor``, ``kube-state-metrics``, ``node``). Rendering carries them over to the
active site (``--config``): in input series and expected labels, ``namespace="medical-platform"``
becomes the site's namespace and each scrape job's ``job`` its job there (with
``kube_prometheus_stack.scrapes_cluster``, ``job="cadvisor"`` becomes ``job="kubelet",
metrics_path="/metrics/cadvisor"``); in a description, a replaced label value of that expected alert
is replaced too (so write those values in a description only where they come from the label).
For the default site the rendering leaves every series and label as written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts.model import Alert, sel
from medobs import UserError, package_data
from medobs.core import promql, scrape_jobs, site
from medobs.core.files import read_text

KINDS = ("failure", "healthy", "borderline")
EVALUATION_INTERVAL = "1m"
STATIC_ANNOTATIONS = ("summary", "runbook_url", "dashboard_url")
#: The site the sources are written for: their series and expected labels carry its values.
SEED = site.DEFAULT
#: A seed label ``(name, value)`` -> the labels that stand for it on the active site.
LabelMapping = dict[tuple[str, str], dict[str, str]]


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
        document = yaml.safe_load(read_text(source, what="alert test file"))
    except yaml.YAMLError as error:
        raise UserError(f"{source}: not valid YAML: {str(error).splitlines()[0]}") from None
    if (
        not isinstance(document, dict)
        or not set(document) <= {"tests", "evaluation_interval"}
        or not isinstance(document.get("tests"), list)
        or not all(isinstance(group, dict) for group in document["tests"])
    ):
        raise UserError(f"{source}: expected `tests:` (a list of test groups) and optionally `evaluation_interval:`")
    for group in document["tests"]:
        name = str(group.get("name", ""))
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


def _job_labels(name: str) -> dict[str, str]:
    """The labels of scrape job ``name``'s series on the active site (:func:`scrape_jobs.job_matchers`)."""
    _, matchers = promql.plain_selector(f"up{{{scrape_jobs.job_matchers(name)}}}")
    return {label: value for label, _, value in matchers}


def label_mapping() -> LabelMapping:
    """The seed labels that differ on the active site, each with the labels replacing it: the
    namespace, and the ``job`` of each scrape job (empty for the default site)."""
    with site.active(SEED):
        seed_jobs = {name: scrape_jobs.job_label(name) for name in scrape_jobs.JOB_NAMES}
    mapping = {("namespace", SEED.namespace): {"namespace": scrape_jobs.namespace()}}
    mapping.update({("job", seed_jobs[name]): _job_labels(name) for name in scrape_jobs.JOB_NAMES})
    return {key: labels for key, labels in mapping.items() if labels != dict([key])}


def _relabel(labels: dict[str, str], mapping: LabelMapping) -> dict[str, str]:
    relabelled: dict[str, str] = {}
    for item in labels.items():
        relabelled.update(mapping.get(item, dict([item])))
    return relabelled


def _series(text: str, mapping: LabelMapping, where: str) -> str:
    """An input series carried over to the active site (as written where nothing changes)."""
    try:
        name, matchers = promql.plain_selector(text)
    except ValueError as error:
        raise UserError(f"{where}: {error}") from None
    labels = {label: value for label, _, value in matchers}
    relabelled = _relabel(labels, mapping)
    if relabelled == labels:
        return text
    return sel(name, *(f"{label}={json.dumps(value)}" for label, value in relabelled.items()))


def _description(text: str, labels: dict[str, str], mapping: LabelMapping) -> str:
    """A description with the replaced values of the expected alert's seed ``labels`` replaced."""
    for label, value in labels.items():
        if (label, value) in mapping:
            replacement = mapping[label, value][label]
            text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", lambda _: replacement, text)
    return text


def render(source: Path, alerts: list[Alert], rule_file: str) -> dict[str, Any]:
    """The promtool test file of a source for the active site; ``rule_file`` is relative to the test file."""
    document = load(source)
    mapping = label_mapping()
    groups = []
    for group in document["tests"]:
        group = dict(group)
        if mapping and "input_series" in group:
            group["input_series"] = [
                {**series, "series": _series(series["series"], mapping, f"{source}: {group['name']}")}
                if isinstance(series, dict) and isinstance(series.get("series"), str) else series
                for series in group["input_series"]
            ]
        tests = []
        for test in group.get("alert_rule_test", []):
            where = f"{source}: {group['name']}: {test['alertname']} at {test['eval_time']}"
            static = _static_annotations(alerts, test["alertname"], where)
            expected = []
            for alert in test.get("exp_alerts") or []:
                annotations = alert.get("exp_annotations", {})
                if "description" not in annotations:
                    raise UserError(f"{where}: an expected alert must give its description")
                labels = {"namespace": SEED.namespace, **alert.get("exp_labels", {})}
                description = _description(annotations["description"], labels, mapping)
                expected.append({
                    **alert,
                    "exp_labels": _relabel(labels, mapping),
                    "exp_annotations": {**static, **annotations, "description": description},
                })
            tests.append({**test, "exp_alerts": expected})
        group["alert_rule_test"] = tests
        groups.append(group)
    return {
        "rule_files": [rule_file],
        "evaluation_interval": document.get("evaluation_interval", EVALUATION_INTERVAL),
        "tests": groups,
    }
