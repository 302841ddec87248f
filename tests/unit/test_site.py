"""The site file: checked against its dataclasses, one line per mistake, its schema and key table
shipped and current, and its values reaching the generators."""

import json

import jsonschema
import pytest
import yaml

from medobs import cli
from medobs.core import links, scrape_jobs, site
from medobs.deploy import scrape
from tests.conftest import REPO

EXAMPLE = REPO / "docs" / "examples" / "site-kube-prometheus-stack.yaml"


def test_the_shipped_schema_and_the_documented_keys_are_current():
    """Regenerate both with `python -m medobs.core.site docs/site-config.md`."""
    assert site.SCHEMA_FILE.read_text(encoding="utf-8") == site.schema_text()
    page = (REPO / "docs" / "site-config.md").read_text(encoding="utf-8")
    assert page == site.with_key_table(page)
    for key in ("kube_prometheus_stack.scrapes_cluster", "receivers.ticket_token.key", "grafana.datasource_uid"):
        assert f"| `{key}` |" in page


def test_the_schema_accepts_what_parse_accepts_and_refuses_what_it_refuses():
    validator = jsonschema.Draft202012Validator(json.loads(site.SCHEMA_FILE.read_text()))
    example = yaml.safe_load(EXAMPLE.read_text())
    validator.validate(example)
    assert site.parse(example).kube_prometheus_stack.release == "kps"
    for bad in ({"grafana": {"uid": "x"}}, {"kube_prometheus_stack": {"scrapes_cluster": "yes"}},
                {"receivers": {"ticket_token": {"name": "only-a-name"}}}):
        assert not validator.is_valid(bad)
        with pytest.raises(site.SiteError):
            site.parse(bad)


@pytest.mark.parametrize(("document", "line"), [
    ({"bogus": 1}, "bogus: unknown key (known: cluster, exporter_tls, grafana, image, kube_prometheus_stack, "
                   "namespace, receivers, runbook_base_url)"),
    ({"grafana": {"uid": "x"}}, "grafana.uid: unknown key (known: datasource_uid, folder, url)"),
    ({"namespace": 3}, "namespace: expected a string, got int 3"),
    ({"kube_prometheus_stack": {"scrapes_cluster": "yes"}},
     "kube_prometheus_stack.scrapes_cluster: expected true or false, got str 'yes'"),
    ({"kube_prometheus_stack": {"prometheus_pod_labels": ["a"]}},
     "kube_prometheus_stack.prometheus_pod_labels: expected a mapping, got list"),
    ({"exporter_tls": {"web_config": {"name": "w", "key": "k"}}}, "exporter_tls.ca: missing (required)"),
    ({"exporter_tls": {"web_config": {"name": "w", "key": "k"}, "ca": {"name": "w", "key": "c"}, "basic_auth": 1}},
     "exporter_tls.basic_auth: expected a mapping, got int"),
    ({"receivers": {"ticket_token": {"name": "s"}}}, "receivers.ticket_token.key: missing (required)"),
    (["namespace"], "the site file: expected a mapping, got list"),
])
def test_each_mistake_is_one_line_naming_the_key(document, line):
    with pytest.raises(site.SiteError) as raised:
        site.parse(document)
    assert str(raised.value) == line


@pytest.mark.parametrize(("content", "expected"), [
    (b"namespace: [unclosed\n", "(line 2): expected"),
    (b"\xff\xfenamespace: x\n", "not UTF-8"),
    (b"grafana:\n  uid: x\n", "grafana.uid: unknown key"),
])
def test_medobs_build_refuses_a_bad_site_file_with_exit_1_and_writes_nothing(tmp_path, capsys, content, expected):
    config = tmp_path / "site.yaml"
    config.write_bytes(content)
    out = tmp_path / "out"
    assert cli.main(["build", "--config", str(config), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and str(config) in err
    assert not out.exists()


def test_an_unreadable_site_file_and_the_environment_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(site.ENVIRONMENT_VARIABLE, str(tmp_path / "missing.yaml"))
    assert cli.main(["build", "--out", str(tmp_path / "out")]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # --config wins over the variable.
    config = tmp_path / "site.yaml"
    config.write_text("namespace: radiology\n")
    assert site.from_arguments(config).namespace == "radiology"


def test_no_file_and_an_empty_file_are_the_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv(site.ENVIRONMENT_VARIABLE, raising=False)
    assert site.from_arguments(None) == site.DEFAULT
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert site.load(empty) == site.DEFAULT


def test_links_and_job_names_follow_the_active_site():
    other = site.load(EXAMPLE)
    with site.active(other):
        assert links.runbook_url("PostgresDown") == "https://wiki.example.org/medobs/runbooks/PostgresDown.md"
        assert links.dashboard_url("database") == "https://grafana.example.org/d/medobs-database"
        assert scrape_jobs.job_label("cadvisor") == "kubelet"
        assert scrape_jobs.job_matchers("cadvisor") == 'job="kubelet", metrics_path="/metrics/cadvisor"'
        assert scrape_jobs.job_label("kube-state-metrics") == "kube-state-metrics"
        assert scrape_jobs.job_label("node") == "node-exporter"
        assert scrape_jobs.job_label("gpu") == "gpu"
        monitored = {m["metadata"]["name"] for m in scrape.monitor_objects()}
        config = scrape.prometheus_config("kubernetes")
    assert monitored.isdisjoint({"cadvisor", "kube-state-metrics", "node"}) and "gpu" in monitored
    assert {j["job_name"] for j in config["scrape_configs"]}.isdisjoint({"cadvisor", "kube-state-metrics", "node"})
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager-operated.observability.svc:9093"]
    # Outside the block, the defaults again: our own jobs.
    assert scrape_jobs.job_matchers("cadvisor") == 'job="cadvisor"'
    assert {m["metadata"]["name"] for m in scrape.monitor_objects()} >= {"cadvisor", "kube-state-metrics", "node"}


@pytest.mark.parametrize("command", [["build"], ["rules", "list"], ["rules", "check"], ["rules", "test"],
                                     ["slo", "build", "slo/specs", "--out", "x"]])
def test_every_generating_command_takes_a_site_file(command, tmp_path):
    args = cli.parser().parse_args([*command, "--config", str(tmp_path / "site.yaml")])
    assert args.config == tmp_path / "site.yaml"


def test_commands_that_generate_nothing_ignore_the_environment_variable(tmp_path, monkeypatch):
    """An exporter or the simulator never reads $MEDOBS_CONFIG (a broken one cannot stop them)."""
    monkeypatch.setenv(site.ENVIRONMENT_VARIABLE, str(tmp_path / "missing.yaml"))
    assert not hasattr(cli.parser().parse_args(["exporter", "queue"]), "config")
