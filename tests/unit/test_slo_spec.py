"""SLO specs: Sloth's prometheus/v1 superset read field by field, and the platform's specs valid
and justified."""

import dataclasses
import re

import pytest
import yaml

from medobs.core.catalog import gateway, inference
from slo import spec, templates
from slo.templates import EventsSli
from tests.conftest import REPO
from tests.slo_support import AVAILABILITY_SPEC, write_spec

SPECS = REPO / "slo" / "specs"


def test_platform_specs_cover_the_issue_and_use_catalog_sources():
    slos = {slo.key: slo for slo in spec.all_slos(spec.load_all([SPECS]))}
    assert set(slos) == {
        "api-gateway/availability", "api-gateway/latency",
        "ml-inference/availability", "ml-inference/latency",
        "study-processing/queue-freshness", "study-processing/dead-letters",
    }
    assert all(isinstance(slo.sli, EventsSli) and slo.sli.inputs is not None for slo in slos.values())
    assert gateway.HTTP_SERVER_REQUESTS.count in slos["api-gateway/availability"].sli.total_query
    assert f'{gateway.HTTP_SERVER_REQUESTS.bucket}{{' in slos["api-gateway/latency"].sli.error_query
    assert inference.REQUESTS.name in slos["ml-inference/availability"].sli.total_query
    assert inference.REQUEST_DURATION.bucket in slos["ml-inference/latency"].sli.error_query
    assert {slos[k].period for k in slos if k.startswith("study-processing/")} == {"28d"}


def test_every_platform_objective_is_justified_in_a_comment():
    for path in SPECS.glob("*.yaml"):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if re.match(r"\s*- name:", line):
                comment = []
                for previous in reversed(lines[:index]):
                    if not previous.strip().startswith("#"):
                        break
                    comment.append(previous)
                assert len(comment) >= 2, f"{path.name}: {line.strip()} has no justification comment"
                objective = next(text for text in lines[index:] if "objective:" in text).split(":")[1].strip()
                assert objective.rstrip("0").rstrip(".") in " ".join(comment), f"{path.name}: {line.strip()}"


def test_latency_thresholds_come_from_the_catalog_buckets():
    assert gateway.SLO_BUCKETS == (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
    assert templates.HISTOGRAM_BUCKETS[gateway.HTTP_SERVER_REQUESTS.name] == gateway.SLO_BUCKETS
    assert templates.HISTOGRAM_BUCKETS[inference.REQUEST_DURATION.name] == inference.LATENCY_BUCKETS


def test_a_sloth_spec_reads_unchanged_with_its_defaults(tmp_path):
    (loaded,) = spec.load(REPO / "tests" / "data" / "sloth" / "getting-started.yml")
    (slo,) = loaded.slos
    assert (slo.service, slo.name, slo.period, str(slo.objective), str(slo.budget)) == (
        "myservice", "requests-availability", "30d", "99.9", "0.001")
    assert slo.labels == {"owner": "myteam", "repo": "myorg/myservice", "tier": "2"}
    assert slo.alerting.page.labels == {"severity": "pageteam", "routing_key": "myteam"}
    assert slo.sli.scale == "rate"


def test_template_queries(tmp_path):
    (loaded,) = spec.load(write_spec(tmp_path, AVAILABILITY_SPEC))
    sli = loaded.slos[0].sli
    assert sli.error_query == 'sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))'
    assert sli.total_query == "sum(rate(http_requests_total[{{.window}}]))"
    assert sli.inputs.bad == ('http_requests_total{code="500"}',)
    assert sli.inputs.good == ('http_requests_total{code="200"}',)


def test_whole_bucket_bounds_match_both_spellings():
    matcher = templates.le_matcher(1.0)
    assert matcher.matches("1.0") and matcher.matches("1") and not matcher.matches("10")
    assert str(templates.le_matcher(0.25)) == 'le="0.25"'


BASE = """version: prometheus/v1
service: shop
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
"""

def test_a_multi_document_file_names_the_document(tmp_path):
    path = write_spec(tmp_path, BASE + "---\n" + BASE.replace("99.9", "100").replace("shop", "shop2"))
    with pytest.raises(spec.SpecError, match=r"spec\.yaml \(document 2\): slos\[0\]\.objective: 100 is outside"):
        spec.load(path)


def test_the_same_slo_in_two_files_is_refused(tmp_path):
    write_spec(tmp_path, BASE, "a.yaml")
    write_spec(tmp_path, BASE, "b.yaml")
    with pytest.raises(spec.SpecError, match=r"b\.yaml: SLO shop/availability is also defined in .*a\.yaml"):
        spec.load_all([tmp_path])


def test_unknown_metric_labels_are_accepted_outside_the_catalog(tmp_path):
    (loaded,) = spec.load(write_spec(tmp_path, AVAILABILITY_SPEC.replace("code\n", "code\n        filter: 'shard=\"a\"'\n")))
    assert 'shard="a"' in loaded.slos[0].sli.total_query


def test_spec_files_of_a_folder_are_sorted_and_an_empty_folder_is_an_error(tmp_path):
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in spec.spec_files([tmp_path])] == ["a.yml", "b.yaml"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(spec.SpecError, match=r"no \*\.yaml spec files"):
        spec.spec_files([tmp_path / "empty"])


SLOTH = REPO / "tests" / "data" / "sloth"


def _unsourced(specs: list[spec.Spec]) -> list[spec.SLO]:
    return [dataclasses.replace(slo, source="") for slo in spec.all_slos(specs)]


@pytest.mark.parametrize("kubernetes, twin", [
    ("k8s-getting-started.yml", "getting-started.yml"),
    ("k8s-multifile.yml", "multifile.yml"),
    ("managed-prometheus-getting-started.yml", "getting-started.yml"),
])
def test_the_kubernetes_form_reads_into_the_same_slos_as_its_prometheus_v1_twin(kubernetes, twin):
    crd, plain = _unsourced(spec.load(SLOTH / kubernetes)), _unsourced(spec.load(SLOTH / twin))
    if twin == "multifile.yml":  # upstream's Kubernetes copy gives myservice2 myservice's queries
        crd, plain = crd[:1], plain[:1]
    assert crd == plain
    assert crd[0].alerting.ticket.labels == {"severity": "slack", "slack_channel": "#alerts-myteam"}


def test_an_object_exported_from_a_cluster_reads_with_its_metadata_and_status(tmp_path):
    exported = (SLOTH / "k8s-getting-started.yml").read_text().replace(
        "  namespace: monitoring\n", "  namespace: monitoring\n  uid: 0d5c\n  resourceVersion: '42'\n  generation: 3\n"
    ) + "status:\n  processedSLOs: 1\n  promOpRulesGenerated: true\n"
    assert _unsourced(spec.load(write_spec(tmp_path, exported))) == _unsourced(spec.load(SLOTH / "getting-started.yml"))


def test_a_kubectl_list_of_objects_reads_each_item_and_names_a_bad_one(tmp_path):
    objects = [d for d in yaml.safe_load_all((SLOTH / "k8s-multifile.yml").read_text()) if d]
    listed = {"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}}
    loaded = spec.load(write_spec(tmp_path, yaml.safe_dump(listed)))
    assert _unsourced(loaded) == _unsourced(spec.load(SLOTH / "k8s-multifile.yml"))
    objects[1]["spec"]["slos"][0]["objective"] = 100
    with pytest.raises(spec.SpecError, match=r"spec\.yaml \(items\[1\]\): spec\.slos\[0\]\.objective: 100 is outside"):
        spec.load(write_spec(tmp_path, yaml.safe_dump(listed)))


def test_disabled_alerts_of_the_kubernetes_form_are_in_the_model(tmp_path):
    text = (SLOTH / "k8s-getting-started.yml").read_text().replace(
        "        pageAlert:\n", "        pageAlert:\n          disable: true\n").replace(
        "        ticketAlert:\n", "        ticketAlert:\n          disable: true\n")
    (slo,) = spec.load(write_spec(tmp_path, text))[0].slos
    assert slo.alerting.page.disable and slo.alerting.ticket.disable
    assert slo.alerting.ticket.labels == {"severity": "slack", "slack_channel": "#alerts-myteam"}


def test_openslo_v1alpha_objectives_become_slos_with_error_as_total_minus_good():
    slos = {slo.name: slo for slo in spec.all_slos(spec.load(SLOTH / "openslo-kubernetes-apiserver.yml"))}
    assert {name: (str(slo.objective), slo.period, slo.service) for name, slo in slos.items()} == {
        "requests-availability-openslo": ("99.9", "30d", "k8s-apiserver"),
        "requests-latency-openslo-1": ("99.0", "30d", "k8s-apiserver"),
        "requests-latency-openslo-2": ("99.9", "30d", "k8s-apiserver"),
    }
    sli = slos["requests-latency-openslo-1"].sli
    assert sli.total_query == 'sum(rate(apiserver_request_duration_seconds_count{verb!="WATCH"}[{{.window}}]))'
    assert sli.error_query == (f"({sli.total_query}) - "
                               '(sum(rate(apiserver_request_duration_seconds_bucket{le="0.4",verb!="WATCH"}[{{.window}}])))')
    assert sli.scale == "rate"


def test_a_file_may_mix_sloth_and_openslo_documents(tmp_path):
    mixed = (SLOTH / "getting-started.yml").read_text() + "\n---\n" + (SLOTH / "openslo-getting-started.yml").read_text()
    keys = [slo.key for slo in spec.all_slos(spec.load(write_spec(tmp_path, mixed)))]
    assert keys == ["myservice/requests-availability", "my-service/sloth-slo-my-service"]


ENVIRONMENT = BASE.replace("slos:", "labels: {env: prod, team: web}\nslos:")


def test_the_same_slo_per_environment_is_two_slos_told_apart_by_their_labels(tmp_path):
    write_spec(tmp_path, ENVIRONMENT, "prod.yaml")
    write_spec(tmp_path, ENVIRONMENT.replace("env: prod", "env: staging"), "staging.yaml")
    prod, staging = spec.all_slos(spec.load_all([tmp_path]))
    assert prod.key == staging.key == "shop/availability"
    assert (prod.labels["env"], staging.labels["env"]) == ("prod", "staging")
    assert prod.identity != staging.identity
    write_spec(tmp_path, ENVIRONMENT.replace("team: web", "team: web2").replace("env: prod", "env: staging"), "x.yaml")
    assert len(spec.all_slos(spec.load_all([tmp_path]))) == 3


def test_the_same_slo_with_the_same_labels_twice_is_refused(tmp_path):
    write_spec(tmp_path, ENVIRONMENT, "a.yaml")
    write_spec(tmp_path, ENVIRONMENT, "b.yaml")
    with pytest.raises(spec.SpecError, match=r"b\.yaml: SLO shop/availability is also defined in \S*a\.yaml with the "
                                             r"same labels \(env='prod', team='web'\)$"):
        spec.load_all([tmp_path])


def test_scrape_interval_defaults_to_a_minute_and_an_slo_overrides_the_spec(tmp_path):
    (slo,) = spec.load(write_spec(tmp_path, BASE))[0].slos
    assert slo.scrape_interval == "1m"
    text = BASE.replace("slos:", "scrape_interval: 30s\nslos:") + BASE.split("slos:\n")[1].replace(
        "availability", "other").replace("    objective:", "    scrape_interval: 2m\n    objective:")
    first, second = spec.load(write_spec(tmp_path, text))[0].slos
    assert (first.scrape_interval, second.scrape_interval) == ("30s", "2m")
    kubernetes = (SLOTH / "k8s-getting-started.yml").read_text().replace("  slos:", "  scrapeInterval: 15s\n  slos:")
    assert spec.load(write_spec(tmp_path, kubernetes, "k.yaml"))[0].slos[0].scrape_interval == "15s"
