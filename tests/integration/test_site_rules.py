"""The alert and SLO unit tests follow the site: built for a site file with another namespace,
release, runbook base, Grafana URL and kube-prometheus-stack's job names, every promtool unit test
passes on the built rules (alerts/unittests.py carries the sources' default-site values over)."""

import yaml

from tests.conftest import medobs

SITE = {
    "namespace": "imaging-prod",
    "cluster": "eu-prod",
    "runbook_base_url": "https://wiki.example.org/runbooks",
    "grafana": {"url": "https://grafana.example.org"},
    "kube_prometheus_stack": {
        "release": "kps",
        "namespace": "observability",
        "scrapes_cluster": True,
        "jobs": {"kube_state_metrics": "ksm"},
    },
}


def test_the_unit_tests_built_for_another_site_pass_under_promtool(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(SITE))
    out = tmp_path / "out"
    medobs("build", "--config", str(config), "--out", str(out), check=True)

    alert_tests = sorted((out / "prometheus" / "tests").glob("alerts-*.test.yml"))
    rendered = "".join(path.read_text() for path in alert_tests)
    assert "medical-platform" not in rendered
    assert 'job="kubelet", metrics_path="/metrics/cadvisor"' in rendered
    assert 'job="node-exporter"' in rendered and 'job="cadvisor"' not in rendered and 'job="node"' not in rendered
    assert 'job="ksm", instance="10.0.0.5:8080", namespace="imaging-prod"' in rendered
    assert "Deployment imaging-prod/api-gateway has had only 2 ready replicas" in rendered
    assert "https://wiki.example.org/runbooks/ContainerRestarting.md" in rendered

    result = medobs("rules", "test", "--config", str(config), "--build-dir", str(out), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    test_files = sorted((out / "prometheus" / "tests").glob("*.yml"))
    assert len(test_files) > len(alert_tests) > 0  # the SLO tests too
    assert result.stdout.count("SUCCESS") == len(test_files), result.stdout
