"""The alert model: an :class:`Alert` per rule, rendered into Prometheus rule groups and
prometheus-operator ``PrometheusRule`` objects.

Every alert carries what on-call needs (monitoring-mixins conventions): the labels
``severity`` (``critical`` pages, ``warning`` opens a ticket, ``info`` is not routed, ``none``
only for the heartbeat, as in kube-prometheus-stack), ``service`` (what Alertmanager groups and
inhibits by) and ``namespace`` (the site's: kube-prometheus-stack's inhibitions match on it, and
prometheus-operator routes an AlertmanagerConfig's alerts by it), and the annotations
``summary``, ``description`` (label values and the current value), ``runbook_url`` and
``dashboard_url``.
"""

from __future__ import annotations

import string
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medobs.core import durations, links, scrape_jobs, site
from medobs.core.catalog import Metric, platform

Severity = Literal["critical", "warning", "info", "none"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info", "none")
REQUIRED_LABELS = ("severity", "service", "namespace")
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url")

#: The ``service`` label of the alerts about each scrape job's targets.
JOB_SERVICES = {j.name: j.service for j in scrape_jobs.JOBS}


def job(name: str) -> str:
    """The ``job`` label of a scrape job's series for the active site (KeyError when unknown):
    kube-prometheus-stack's job where it scrapes the job's targets (:func:`scrape_jobs.job_label`)."""
    return scrape_jobs.job_label(name)


def sel(metric: Metric | str, *matchers: str, **equal: str) -> str:
    """A PromQL selector: ``sel(gpu.LOST, job="gpu")`` is ``medobs_gpu_lost{job="gpu"}``.

    ``matchers`` are written out as given (see :func:`matches`, :func:`differs`); ``equal``
    become ``label="value"``.
    """
    parts = [f'{label}="{value}"' for label, value in equal.items()] + list(matchers)
    return f"{metric}{{{', '.join(parts)}}}"


def matches(label: str, pattern: str) -> str:
    """A regex matcher for :func:`sel`: ``matches("xid", "48|79")`` is ``xid=~"48|79"``."""
    return f'{label}=~"{pattern}"'


def differs(label: str, value: str) -> str:
    """A negative matcher for :func:`sel`: ``label!="value"``."""
    return f'{label}!="{value}"'


def no_healthy_target(job_name: str) -> str:
    """An expression with one sample while no target of the job is up, or the job has none."""
    return f"absent({sel(platform.UP, job=job_name)} == 1)"


def promql(text: str) -> str:
    """A multi-line expression, dedented (rendered as a literal block in the rule files)."""
    return textwrap.dedent(text).strip()


def percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


def spoken(duration: str) -> str:
    """``5m`` -> ``5 minutes``, ``1h`` -> ``1 hour`` (for descriptions)."""
    try:
        (number, unit), = durations.parts(duration)
    except ValueError:
        unit = ""
    if unit not in _UNITS:
        raise ValueError(f"duration {duration!r}: use one number and one unit (30s, 5m, 1h, 2d)")
    return f"{number} {_UNITS[unit]}{'' if number == 1 else 's'}"


class _Text(string.Template):
    """``@name`` placeholders, which cannot clash with Go templates' ``{{ $value }}``."""

    delimiter = "@"


@dataclass(frozen=True)
class Alert:
    """One alerting rule.

    ``description`` is a Prometheus (Go) template; ``@name`` placeholders in it are filled from
    ``values`` when the rule is rendered, and ``@for`` with the ``for`` duration in words.
    ``dashboard`` is a key of :data:`medobs.core.links.DASHBOARD_UIDS`.
    """

    name: str
    expr: str
    severity: Severity
    service: str
    dashboard: str
    summary: str
    description: str
    for_: str = "0m"
    values: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.name}: severity {self.severity!r} is not one of {SEVERITIES}")
        if self.dashboard not in links.DASHBOARD_UIDS:
            raise ValueError(f"{self.name}: unknown dashboard {self.dashboard!r}")
        if set(self.labels) & set(REQUIRED_LABELS):
            raise ValueError(f"{self.name}: severity, service and namespace are set for every alert, not in labels")
        spoken(self.for_)

    @property
    def annotations(self) -> dict[str, str]:
        values = {"for": spoken(self.for_), **self.values}
        return {
            "summary": self.summary,
            "description": _Text(self.description).substitute(values),
            "runbook_url": links.runbook_url(self.name),
            "dashboard_url": links.dashboard_url(self.dashboard),
        }

    def rule(self) -> dict[str, Any]:
        """The rule as Prometheus reads it."""
        labels = {"severity": self.severity, "service": self.service, "namespace": site.current().namespace}
        rule: dict[str, Any] = {
            "alert": self.name,
            "expr": self.expr,
            "labels": {**labels, **self.labels},
            "annotations": self.annotations,
        }
        if self.for_ != "0m":
            rule["for"] = self.for_
        return rule


def rule_group(domain: str, alerts: list[Alert]) -> dict[str, Any]:
    return {"name": f"medobs-alerts-{domain}", "rules": [alert.rule() for alert in alerts]}


def prometheus_rule(domain: str, alerts: list[Alert]) -> dict[str, Any]:
    """A prometheus-operator ``PrometheusRule`` object holding one domain's group."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": scrape_jobs.kubernetes_metadata(f"medobs-alerts-{domain}", {"role": "alert-rules"}, picked_up=True),
        "spec": {"groups": [rule_group(domain, alerts)]},
    }


def service_down(name: str, job_name: str, service: str, for_: str, summary: str, consequence: str) -> Alert:
    """The critical alert for a service none of whose targets Prometheus can scrape."""
    return Alert(
        name=name,
        expr=no_healthy_target(job_name),
        for_=for_,
        severity="critical",
        service=service,
        dashboard="system-overview",
        labels={"job": job_name},
        summary=summary,
        description=f"Prometheus has not scraped a single healthy @job target for @for: {consequence}",
        values={"job": job_name},
    )
