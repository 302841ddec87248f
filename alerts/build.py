"""The build/ files of the alerts (registered with ``medobs build``).

| file under build/ | what |
|---|---|
| ``prometheus/rules/alerts-<domain>.yml`` | one rule group per domain; Prometheus loads ``rules/*.yml`` |
| ``prometheus/tests/alerts-<domain>*.test.yml`` | their promtool unit tests (``medobs rules test``) |
| ``k8s/prometheusrules-alerts.yaml`` | the same groups as prometheus-operator ``PrometheusRule`` objects |
| ``alertmanager/alertmanager.yml``, ``alertmanager-native.yml`` | routing, inhibitions, receivers |
"""

from __future__ import annotations

from alerts import alertmanager, alerts_by_domain, unittests
from alerts.model import prometheus_rule, rule_group
from alerts.thresholds import DEFAULT, Thresholds
from medobs.core.output import to_yaml, to_yaml_documents


def rule_file_name(domain: str) -> str:
    return f"alerts-{domain}.yml"


def rule_file_path(domain: str) -> str:
    return f"prometheus/rules/{rule_file_name(domain)}"


def rule_files(thresholds: Thresholds = DEFAULT) -> dict[str, str]:
    """``{path under build/: text}`` of the Prometheus rule files."""
    return {
        rule_file_path(domain): to_yaml({"groups": [rule_group(domain, alerts)]}, source=f"alerts/{domain}.py")
        for domain, alerts in alerts_by_domain(thresholds).items()
    }


def test_files(thresholds: Thresholds = DEFAULT) -> dict[str, str]:
    """The promtool unit tests, each pointing at its domain's rule file (``../rules/...``)."""
    return {
        unittests.test_path(source): to_yaml(
            unittests.render(source, alerts, f"../rules/{rule_file_name(domain)}"),
            source=f"alerts/tests/{source.name}",
            sort_keys=False,
        )
        for domain, alerts in alerts_by_domain(thresholds).items()
        for source in unittests.sources(domain)
    }


def build_files() -> dict[str, str]:
    by_domain = alerts_by_domain()
    objects = [prometheus_rule(domain, alerts) for domain, alerts in by_domain.items()]
    return {
        **rule_files(),
        **test_files(),
        "k8s/prometheusrules-alerts.yaml": to_yaml_documents(objects, source="alerts/"),
        **alertmanager.build_files(),
    }
