"""The generated scrape configs: promtool-valid, complete, and the operator objects schema-valid."""

import subprocess

import jsonschema
import pytest
import yaml

from medobs import REPO_ROOT, scrape

from .conftest import SCHEMAS, require_binary

BUILT = REPO_ROOT / "build" / "prometheus"


def promtool_check_config(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_binary("promtool"), "check", "config", "--syntax-only", str(path)],
        capture_output=True, text=True,
    )


@pytest.mark.parametrize("flavour", ["compose", "native"])
def test_promtool_accepts_static_flavours(flavour):
    result = promtool_check_config(BUILT / f"prometheus-{flavour}.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_kubernetes_flavour_apart_from_discovery(tmp_path):
    """Debian's Prometheus is built without Kubernetes discovery (see README), so promtool checks
    everything else (relabelling, paths, intervals) with the discovery block swapped for file_sd;
    the discovery blocks are checked against the upstream field set below."""
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["file_sd_configs"] = [{"files": ["targets/*.json"]}]
    target = tmp_path / "prometheus.yml"
    target.write_text(yaml.safe_dump(config))
    result = promtool_check_config(target)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_discovery_blocks_use_upstream_fields_and_meta_labels():
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        (sd,) = job["kubernetes_sd_configs"]
        assert set(sd) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
        assert sd["role"] in {"pod", "endpoints"}
        assert sd["namespaces"] == {"names": [scrape.NAMESPACE]}
        allowed = ("__meta_kubernetes_namespace", "__meta_kubernetes_pod_")
        if sd["role"] == "endpoints":
            allowed += ("__meta_kubernetes_service_", "__meta_kubernetes_endpoint_")
        for rule in job["relabel_configs"]:
            for label in rule.get("source_labels", []):
                assert label.startswith(allowed), f"{job['job_name']}: {label} not set by role {sd['role']}"


def test_api_gateway_keeps_the_platform_relabelling():
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    gateway = next(j for j in config["scrape_configs"] if j["job_name"] == "api-gateway")
    assert {
        "source_labels": ["__meta_kubernetes_pod_label_app"], "action": "keep", "regex": "api-gateway"
    } in gateway["relabel_configs"]
    assert gateway["metrics_path"] == "/actuator/prometheus"


@pytest.mark.parametrize("flavour", scrape.FLAVOURS)
def test_every_job_is_in_every_flavour_at_15s(flavour):
    config = yaml.safe_load((BUILT / f"prometheus-{flavour}.yml").read_text())
    assert config["global"]["scrape_interval"] == "15s"
    names = [j["job_name"] for j in config["scrape_configs"]]
    expected = [j.name for j in scrape.JOBS if flavour != "kubernetes" or j.k8s_kind]
    assert names == expected
    for required in ("api-gateway", "ml-inference", "postgresql", "redis", "rabbitmq", "gpu", "inference-exporter"):
        assert required in names


def test_static_targets():
    native = yaml.safe_load((BUILT / "prometheus-native.yml").read_text())
    compose = yaml.safe_load((BUILT / "prometheus-compose.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in native["scrape_configs"]}
    assert targets["gpu"] == "127.0.0.1:9400"
    assert targets["rabbitmq"] == "127.0.0.1:9419"
    compose_targets = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in compose["scrape_configs"]}
    assert compose_targets["postgresql"] == "postgres-exporter:9187"
    assert compose_targets["ml-inference"] == "ml-inference:8501"


def test_port_overrides_move_native_targets():
    config = scrape.prometheus_config("native", {"gpu": 19400, "alertmanager": 19093})
    gpu = next(j for j in config["scrape_configs"] if j["job_name"] == "gpu")
    assert gpu["static_configs"] == [{"targets": ["127.0.0.1:19400"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]


def crd_schema(kind: str) -> dict:
    crd = yaml.safe_load((SCHEMAS / f"monitoring.coreos.com_{kind.lower()}s.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def test_monitor_objects_validate_against_the_operator_crds():
    documents = list(yaml.safe_load_all((REPO_ROOT / "build" / "k8s" / "monitors.yaml").read_text()))
    kinds = {doc["kind"] for doc in documents}
    assert kinds == {"PodMonitor", "ServiceMonitor"}
    for doc in documents:
        jsonschema.validate(doc, crd_schema(doc["kind"]))
    assert len(documents) == len([j for j in scrape.JOBS if j.k8s_kind])


def test_crd_validation_catches_a_broken_object():
    doc = scrape.monitor_objects()[0]
    doc["spec"]["podMetricsEndpoints"][0]["portNumber"] = "not-a-number"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, crd_schema(doc["kind"]))
