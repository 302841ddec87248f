"""The Kubernetes manifests of the package's processes: valid Kubernetes 1.27 objects (the
platform's version, schemas from kubernetes-validate), wired to the scrape configuration, and
running medobs commands that exist with flags that parse."""

import shlex

import kubernetes_validate
import pytest
import yaml

from exporters.gpu.podresources import DEFAULT_SOCKET
from medobs import __version__
from medobs.cli import parser
from medobs.core import scrape_jobs
from medobs.deploy import kubernetes as k8s
from tests.conftest import REPO

K8S = REPO / "build" / "k8s"
KUBERNETES_VERSION = "1.27"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def containers() -> list[dict]:
    found = [c for d in documents("exporters.yaml") if d["kind"] != "Service"
             for c in d["spec"]["template"]["spec"]["containers"]]
    patch = yaml.safe_load((K8S / "ml-inference-sidecar-patch.yaml").read_text())
    return found + patch["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("name", ["exporters.yaml", "networkpolicy-scrape.yaml"])
def test_objects_validate_against_kubernetes_1_27(name):
    for document in documents(name):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_sidecar_patch_merges_into_a_valid_ml_inference_deployment():
    """The seed's ml-inference Deployment with the patch's container added (what a strategic
    merge of a new container name does) is a valid Deployment."""
    patch = yaml.safe_load((K8S / "ml-inference-sidecar-patch.yaml").read_text())
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ml-inference", "namespace": scrape_jobs.NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app": "ml-inference"}},
            "template": {
                "metadata": {"labels": {"app": "ml-inference"}},
                "spec": {"containers": [
                    {"name": "tensorflow-serving", "image": "tensorflow/serving:2.10.0-gpu",
                     "ports": [{"containerPort": 8500}, {"containerPort": 8501}]},
                    *patch["spec"]["template"]["spec"]["containers"],
                ]},
            },
        },
    }
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("container", containers(), ids=lambda c: c["name"])
def test_every_container_runs_a_medobs_command_whose_flags_parse(container):
    args = parser().parse_args(container["args"])  # exits (fails the test) on an unknown flag
    assert args.command == "exporter"
    host, port = args.listen
    assert container["ports"][0] == {"name": "metrics", "containerPort": port}
    assert container["image"] == f"{k8s.REGISTRY}:{__version__}-{args.exporter}"  # the image of its extra
    assert container["readinessProbe"]["httpGet"]["port"] == port


def test_containers_serve_the_ports_and_labels_the_scrape_config_selects():
    by_app = {}
    for document in documents("exporters.yaml"):
        if document["kind"] != "Service":
            template = document["spec"]["template"]
            by_app[template["metadata"]["labels"]["app"]] = template["spec"]["containers"][0]
    for name in ("gpu", "rabbitmq"):
        job = scrape_jobs.job(name)
        assert by_app[job.k8s_app]["ports"][0]["containerPort"] == job.port
    (service,) = [d for d in documents("exporters.yaml") if d["kind"] == "Service"]
    rabbitmq = scrape_jobs.job("rabbitmq")
    assert service["metadata"]["labels"]["app"] == rabbitmq.k8s_app
    assert service["spec"]["ports"] == [{"name": rabbitmq.k8s_port_name, "port": rabbitmq.port, "targetPort": "metrics"}]
    sidecar = containers()[-1]
    assert sidecar["ports"][0]["containerPort"] == scrape_jobs.job("inference-exporter").port
    assert f"http://127.0.0.1:{scrape_jobs.job('ml-inference').port}" in sidecar["args"]


def test_gpu_exporter_sees_host_pids_and_the_pod_resources_socket():
    (daemonset,) = [d for d in documents("exporters.yaml") if d["kind"] == "DaemonSet"]
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    (mount,) = spec["containers"][0]["volumeMounts"]
    assert DEFAULT_SOCKET.startswith(mount["mountPath"] + "/")
    assert spec["volumes"][0]["hostPath"]["path"] == mount["mountPath"]


def test_queue_exporter_password_comes_from_a_file_never_the_manifest():
    text = (K8S / "exporters.yaml").read_text()
    (deployment,) = [d for d in documents("exporters.yaml") if d["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "RABBITMQ_PASSWORD" not in env
    assert env["RABBITMQ_PASSWORD_FILE"]["value"].startswith("/etc/medobs/")
    assert "guest" not in shlex.split(text.replace(":", " "))


def test_network_policy_opens_every_platform_metrics_port_to_monitoring():
    (policy,) = documents("networkpolicy-scrape.yaml")
    (rule,) = policy["spec"]["ingress"]
    opened = {p["port"] for p in rule["ports"]}
    for job in scrape_jobs.JOBS:
        if job.k8s_kind in ("pod", "service") and job.k8s_namespace == scrape_jobs.NAMESPACE:
            assert job.port in opened, job.name
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": scrape_jobs.MONITORING_NAMESPACE
    }
