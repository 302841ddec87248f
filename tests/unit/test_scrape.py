"""The generated scrape configs: complete, and the operator objects schema-valid (promtool on
them: tests/integration/test_scrape.py)."""

import functools
import operator

import jsonschema
import pytest
import yaml

from medobs.core import scrape_jobs
from medobs.deploy import scrape
from tests.conftest import REPO
from tests.crd_support import crd_validator, strict

BUILT = REPO / "build" / "prometheus"


def test_kubernetes_discovery_blocks_use_upstream_fields_and_meta_labels():
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        (sd,) = job["kubernetes_sd_configs"]
        assert set(sd) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
        assert sd["role"] in {"pod", "endpoints", "node"}
        if sd["role"] == "node":
            assert "namespaces" not in sd  # nodes are not namespaced
            allowed: tuple[str, ...] = ("__meta_kubernetes_node_",)
        else:
            assert sd["namespaces"] == {"names": [scrape_jobs.job(job["job_name"]).namespace]}
            allowed = ("__meta_kubernetes_namespace", "__meta_kubernetes_pod_")
        if sd["role"] == "endpoints":
            allowed += ("__meta_kubernetes_service_", "__meta_kubernetes_endpoint_")
        for rule in job["relabel_configs"]:
            for label in rule.get("source_labels", []):
                assert label.startswith(allowed), f"{job['job_name']}: {label} not set by role {sd['role']}"


def test_platform_jobs_select_the_platform_namespace_and_cluster_jobs_their_own():
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    namespaces = {j["job_name"]: j["kubernetes_sd_configs"][0].get("namespaces", {}).get("names") for j in config["scrape_configs"]}
    assert namespaces["api-gateway"] == [scrape_jobs.namespace()]
    assert namespaces["kube-state-metrics"] == ["monitoring"]
    assert namespaces["cert-manager"] == ["cert-manager"]
    assert namespaces["cadvisor"] is None


def test_cadvisor_reads_every_kubelet_over_https_with_the_service_account():
    """As the Prometheus example config and kube-prometheus do: role node, the kubelet's own
    port, /metrics/cadvisor, the pod's service-account token and CA, cAdvisor's labels and not
    its timestamps, only the platform's namespace kept."""
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    cadvisor = next(j for j in config["scrape_configs"] if j["job_name"] == "cadvisor")
    assert cadvisor["kubernetes_sd_configs"] == [{"role": "node"}]
    assert cadvisor["scheme"] == "https" and cadvisor["metrics_path"] == "/metrics/cadvisor"
    assert cadvisor["authorization"] == {"credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    assert cadvisor["tls_config"] == {"ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"}
    assert cadvisor["honor_labels"] is True and cadvisor["honor_timestamps"] is False
    assert cadvisor["metric_relabel_configs"] == [
        {"source_labels": ["namespace"], "action": "keep", "regex": scrape_jobs.namespace()}
    ]


def test_jobs_about_other_objects_keep_their_labels_and_add_no_pod_of_their_own():
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    for name in ("kube-state-metrics", "cert-manager"):
        found = next(j for j in config["scrape_configs"] if j["job_name"] == name)
        assert found["honor_labels"] is True
        targets = {rule.get("target_label") for rule in found["relabel_configs"]}
        assert not targets & {"namespace", "pod", "container"}, name


def test_api_gateway_keeps_the_platform_relabelling():
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    gateway = next(j for j in config["scrape_configs"] if j["job_name"] == "api-gateway")
    assert {
        "source_labels": ["__meta_kubernetes_pod_label_app"], "action": "keep", "regex": "api-gateway"
    } in gateway["relabel_configs"]
    assert gateway["metrics_path"] == "/actuator/prometheus"


@pytest.mark.parametrize("flavour", scrape_jobs.FLAVOURS)
def test_every_job_is_in_every_flavour_at_15s(flavour):
    config = yaml.safe_load((BUILT / f"prometheus-{flavour}.yml").read_text())
    assert config["global"]["scrape_interval"] == "15s"
    names = [j["job_name"] for j in config["scrape_configs"]]
    expected = [j.name for j in scrape_jobs.JOBS if flavour != "kubernetes" or j.k8s_kind]
    assert names == expected
    for required in ("api-gateway", "ml-inference", "postgresql", "redis", "rabbitmq", "gpu", "inference-exporter"):
        assert required in names


def test_static_targets():
    native = yaml.safe_load((BUILT / "prometheus-native.yml").read_text())
    compose = yaml.safe_load((BUILT / "prometheus-compose.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in native["scrape_configs"]}
    assert targets["gpu"] == ["127.0.0.1:9400"]
    assert targets["rabbitmq"] == ["127.0.0.1:9419"]
    compose_targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in compose["scrape_configs"]}
    assert compose_targets["ml-inference"] == ["simulator:8501"]
    # the primary's exporter and the replica's
    assert targets["postgresql"] == ["127.0.0.1:9187", "127.0.0.1:9188"]
    assert compose_targets["postgresql"] == ["postgres-exporter:9187", "postgres-replica-exporter:9187"]
    # kube-state-metrics listens on 8080 in a cluster; locally the gateway has 8080
    assert targets["kube-state-metrics"] == ["127.0.0.1:8090"]
    assert compose_targets["kube-state-metrics"] == ["simulator:8090"]
    addresses = [address for listed in targets.values() for address in listed]
    assert len(set(addresses)) == len(addresses), "two native targets on one port"


def test_in_kubernetes_every_exporter_behind_the_postgresql_service_is_a_target():
    """The postgres-exporter service selects the primary's and the replica's exporter pods: the
    job discovers the service's endpoints, one target per pod, as the native and compose
    flavours list both."""
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "postgresql")
    assert job["kubernetes_sd_configs"][0]["role"] == "endpoints"
    assert {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"} in job["relabel_configs"]


def test_port_overrides_move_native_targets():
    config = scrape.prometheus_config("native", {"gpu": 19400, "alertmanager": 19093, "postgres-replica-exporter": 19188})
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["gpu"]["static_configs"] == [{"targets": ["127.0.0.1:19400"]}]
    assert jobs["postgresql"]["static_configs"] == [{"targets": ["127.0.0.1:9187", "127.0.0.1:19188"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]


def test_a_faster_scrape_interval_also_evaluates_faster():
    config = scrape.prometheus_config("native", scrape_interval="5s")
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "5s"


def test_monitor_objects_validate_against_the_operator_crds():
    documents = list(yaml.safe_load_all((REPO / "build" / "k8s" / "monitors.yaml").read_text()))
    kinds = {doc["kind"] for doc in documents}
    assert kinds == {"PodMonitor", "ServiceMonitor"}
    for doc in documents:
        crd_validator(doc["kind"]).validate(doc)
    assert len(documents) == len([j for j in scrape_jobs.JOBS if j.k8s_kind])


def test_crd_validation_catches_a_broken_object():
    doc = scrape.monitor_objects()[0]
    doc["spec"]["podMetricsEndpoints"][0]["portNumber"] = "not-a-number"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator(doc["kind"]).validate(doc)


@pytest.mark.parametrize("kind, where, key, misspelled", [
    ("PodMonitor", ("spec",), "podMetricsEndpoints", "podMetricEndpointz"),
    ("PodMonitor", ("spec", "podMetricsEndpoints", 0), "interval", "intervall"),
    ("ServiceMonitor", ("spec", "selector"), "matchLabels", "matchLabelz"),
], ids=["podMetricEndpointz", "intervall", "matchLabelz"])
def test_crd_validation_rejects_a_misspelled_field(kind, where, key, misspelled):
    """As `kubectl apply --validate=strict`: an unknown field fails rather than being pruned."""
    doc = next(d for d in scrape.monitor_objects() if d["kind"] == kind)
    crd_validator(kind).validate(doc)
    parent = functools.reduce(operator.getitem, where, doc)
    parent[misspelled] = parent.pop(key)
    with pytest.raises(jsonschema.ValidationError, match=f"'{misspelled}' was unexpected"):
        crd_validator(kind).validate(doc)


def test_strict_schemas_stay_open_where_kubernetes_keeps_unknown_fields():
    schema = {"type": "object", "properties": {
        "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
        "kept": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"b": {}}}},
        "list": {"type": "array", "items": {"type": "object", "properties": {"c": {}}}},
        "free": {"type": "object"},
    }}
    closed = strict(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["closed"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["kept"]
    assert closed["properties"]["map"]["additionalProperties"]["additionalProperties"] is False
    assert closed["properties"]["list"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["free"]
    assert "additionalProperties" not in schema, "the argument was changed"
