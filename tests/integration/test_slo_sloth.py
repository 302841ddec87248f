"""Sloth's published example specs (tests/data/sloth/, every spec of its examples/ folder) compile
unchanged, in all three forms (prometheus/v1, the Kubernetes PrometheusServiceLevel, OpenSLO
v1alpha), and promtool accepts the rules and passes the generated tests; the plugin examples are
one line saying what to write instead."""

from pathlib import Path

import pytest
import yaml

from slo import spec
from tests.conftest import REPO, medobs
from tests.slo_support import alert_rules, assert_one_line_error

SLOTH = REPO / "tests" / "data" / "sloth"
EXAMPLES = sorted(p for p in SLOTH.iterdir() if p.suffix in (".yml", ".yaml"))
_SLI_PLUGIN = r"slos\[0\]\.sli\.plugin: Sloth SLI plugins \('getting_started_availability'\) are not supported"
_SLO_PLUGINS = r"Sloth SLO plugins are not supported \(medobs cannot run Sloth's Go plugins and generates its own rules\)"
#: The examples that need Sloth's Go plugins, and the field each one's refusal names.
PLUGINS = {
    "plugin-getting-started.yml": _SLI_PLUGIN + r".*sli\.events \(error_query and total_query",
    "plugin-k8s-getting-started.yml": r"spec\." + _SLI_PLUGIN + r".*sli\.events \(errorQuery and totalQuery",
    "slo-plugin-getting-started.yml": r"slo_plugins: " + _SLO_PLUGINS,
    "slo-plugin-k8s-getting-started.yml": r"spec\.sloPlugins: " + _SLO_PLUGINS,
    "contrib-slo-plugins.yml": r"slos\[0\]\.plugins: " + _SLO_PLUGINS,
    "contrib-denominator-corrected.yaml": r"spec\.sloPlugins: " + _SLO_PLUGINS,
    "contrib-sli-total-amount-rules.yaml": r"spec\.sloPlugins: " + _SLO_PLUGINS,
    "victoria-metrics.yml": r"slo_plugins: " + _SLO_PLUGINS,
}
COMPILED = [p for p in EXAMPLES if p.name not in PLUGINS]


def test_every_published_example_spec_is_here():
    assert {p.name for p in EXAMPLES} == set(PLUGINS) | {
        "getting-started.yml", "home-wifi.yml", "raw-home-wifi.yml", "multifile.yml", "no-alerts.yml",
        "kubernetes-apiserver.yml", "custom_rule_group_interval.yml", "k8s-getting-started.yml", "k8s-home-wifi.yml",
        "k8s-multifile.yml", "managed-prometheus-getting-started.yml", "managed-prometheus-grpc-server.yml",
        "openslo-getting-started.yml", "openslo-kubernetes-apiserver.yml",
    }
    readme = (SLOTH / "README.md").read_text()
    assert all(f"`{p.name}`" in readme for p in EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("example", COMPILED, ids=lambda p: p.stem)
def test_example_compiles_and_its_generated_tests_pass(tmp_path, example: Path):
    result = medobs("slo", "build", str(example), "--out", str(tmp_path), "--kubernetes", "--verify", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test files pass" in result.stdout
    slos = spec.all_slos(spec.load(example))
    assert slos
    for slo in slos:
        assert (tmp_path / "rules" / f"slo-{slo.service}.yml").exists()
        assert (tmp_path / "k8s" / f"slo-{slo.service}.yaml").exists()
        assert (tmp_path / "tests" / f"slo-{slo.service}-{slo.name}.yml").exists()


@pytest.mark.parametrize("example", sorted(PLUGINS))
def test_plugin_example_is_one_line_naming_the_field(tmp_path, example: str):
    result = medobs("slo", "build", str(SLOTH / example), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, rf"\S*{example}: {PLUGINS[example]}")
    assert not (tmp_path / "out").exists()


def test_sloth_labels_and_alert_labels_are_kept(tmp_path):
    medobs("slo", "build", str(SLOTH / "getting-started.yml"), "--out", str(tmp_path), check=True)
    rule_file = tmp_path / "rules" / "slo-myservice.yml"
    group = yaml.safe_load(rule_file.read_text())["groups"][0]
    recorded = [r for r in group["rules"] if "record" in r]
    assert all(r["labels"]["owner"] == "myteam" and r["labels"]["tier"] == "2" for r in recorded)
    page, ticket = alert_rules(rule_file, "MyServiceHighErrorRate")
    assert page["labels"]["severity"] == "pageteam" and page["labels"]["routing_key"] == "myteam"
    assert ticket["labels"]["slack_channel"] == "#alerts-myteam"
    assert page["annotations"]["summary"] == "High error rate on 'myservice' requests responses"


def test_alerting_switched_off_raises_no_alert_at_all(tmp_path):
    medobs("slo", "build", str(SLOTH / "no-alerts.yml"), "--out", str(tmp_path), check=True)
    groups = yaml.safe_load((tmp_path / "rules" / "slo-myapp.yml").read_text())["groups"]
    assert [r["alert"] for g in groups for r in g["rules"] if "alert" in r] == []
    assert any("record" in r for g in groups for r in g["rules"])


def test_raw_sli_drops_nan_and_averages_the_period(tmp_path):
    medobs("slo", "build", str(SLOTH / "raw-home-wifi.yml"), "--out", str(tmp_path), check=True)
    group = yaml.safe_load((tmp_path / "rules" / "slo-home-wifi.yml").read_text())["groups"][0]
    exprs = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
    hour = exprs["slo:sli_error:ratio_rate1h"]
    assert ">= 0" in hour and "unifipoller_client_satisfaction_ratio[1h]" in hour
    assert exprs["slo:sli_error:ratio_rate30d"].startswith("avg_over_time(slo:sli_error:ratio_rate5m")
    absent = [r for r in group["rules"] if r.get("alert", "").endswith("SLIAbsent")]
    assert absent[0]["expr"] == "absent(unifipoller_client_satisfaction_ratio)"
