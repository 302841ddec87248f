"""Sloth's published prometheus/v1 example specs (tests/data/sloth/) compile unchanged, and
promtool accepts the rules and passes the generated tests."""

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, medobs
from tests.slo_support import alert_rules

SLOTH = REPO / "tests" / "data" / "sloth"
EXAMPLES = sorted(SLOTH.glob("*.yml"))


def test_every_published_prometheus_v1_example_is_here():
    assert {p.name for p in EXAMPLES} == {
        "getting-started.yml", "home-wifi.yml", "raw-home-wifi.yml", "multifile.yml", "no-alerts.yml",
        "kubernetes-apiserver.yml", "custom_rule_group_interval.yml",
    }


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_compiles_and_its_generated_tests_pass(tmp_path, example: Path):
    result = medobs("slo", "build", str(example), "--out", str(tmp_path), "--kubernetes", "--verify", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test files pass" in result.stdout
    documents = list(yaml.safe_load_all(example.read_text()))
    for document in documents:
        assert (tmp_path / "rules" / f"slo-{document['service']}.yml").exists()
        assert (tmp_path / "k8s" / f"slo-{document['service']}.yaml").exists()
        for slo in document["slos"]:
            assert (tmp_path / "tests" / f"slo-{document['service']}-{slo['name']}.yml").exists()


def test_sloth_labels_and_alert_labels_are_kept(tmp_path):
    medobs("slo", "build", str(SLOTH / "getting-started.yml"), "--out", str(tmp_path), check=True)
    rule_file = tmp_path / "rules" / "slo-myservice.yml"
    group = yaml.safe_load(rule_file.read_text())["groups"][0]
    recorded = [r for r in group["rules"] if "record" in r]
    assert all(r["labels"]["owner"] == "myteam" and r["labels"]["tier"] == "2" for r in recorded)
    page, _, ticket, _ = alert_rules(rule_file, "MyServiceHighErrorRate")
    assert page["labels"]["severity"] == "pageteam" and page["labels"]["routing_key"] == "myteam"
    assert ticket["labels"]["slack_channel"] == "#alerts-myteam"
    assert page["annotations"]["summary"] == "High error rate on 'myservice' requests responses"


def test_disabled_alerts_leave_only_the_absent_alert(tmp_path):
    medobs("slo", "build", str(SLOTH / "no-alerts.yml"), "--out", str(tmp_path), check=True)
    group = yaml.safe_load((tmp_path / "rules" / "slo-myapp.yml").read_text())["groups"][0]
    assert [r["alert"] for r in group["rules"] if "alert" in r] == ["MyappHttpAvailabilitySLIAbsent"]


def test_raw_sli_drops_nan_and_averages_the_period(tmp_path):
    medobs("slo", "build", str(SLOTH / "raw-home-wifi.yml"), "--out", str(tmp_path), check=True)
    group = yaml.safe_load((tmp_path / "rules" / "slo-home-wifi.yml").read_text())["groups"][0]
    exprs = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
    hour = exprs["slo:sli_error:ratio_rate1h"]
    assert ">= 0" in hour and "unifipoller_client_satisfaction_ratio[1h]" in hour
    assert exprs["slo:sli_error:ratio_rate30d"].startswith("avg_over_time(slo:sli_error:ratio_rate5m")
    absent = [r for r in group["rules"] if r.get("alert", "").endswith("SLIAbsent")]
    assert absent[0]["expr"] == "absent(unifipoller_client_satisfaction_ratio)"
