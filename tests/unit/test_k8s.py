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
from medobs.core import scrape_jobs, site
from medobs.deploy import kubernetes as k8s
from tests.conftest import REPO
from tests.crd_support import validate_alertmanager_config

K8S = REPO / "build" / "k8s"
KUBERNETES_VERSION = "1.27"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def containers() -> list[dict]:
    found = [c for d in documents("exporters.yaml") if d["kind"] != "Service"
             for c in d["spec"]["template"]["spec"]["containers"]]
    return found + sidecar_patch()["spec"]["template"]["spec"]["containers"]


def sidecar_patch() -> dict:
    return yaml.safe_load((K8S / "ml-inference-sidecar" / "patch.yaml").read_text())


@pytest.mark.parametrize("name", ["exporters.yaml", "networkpolicy-scrape.yaml"])
def test_objects_validate_against_kubernetes_1_27(name):
    for document in documents(name):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_sidecar_patch_merges_into_a_valid_ml_inference_deployment():
    """The seed's ml-inference Deployment with the patch's container added (what a strategic
    merge of a new container name does) is a valid Deployment."""
    patch = sidecar_patch()
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ml-inference", "namespace": scrape_jobs.namespace()},
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
    ((host, port),) = args.listen
    assert container["ports"][0] == {"name": "metrics", "containerPort": port}
    assert container["image"] == f"{site.current().image}:{__version__}-{args.exporter}"  # the image of its extra
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


def test_network_policy_opens_every_platform_metrics_port_to_the_prometheus_pods_only():
    (policy,) = documents("networkpolicy-scrape.yaml")
    (rule,) = policy["spec"]["ingress"]
    opened = {p["port"] for p in rule["ports"]}
    for job in scrape_jobs.JOBS:
        if job.k8s_kind in ("pod", "service") and job.k8s_namespace == scrape_jobs.PLATFORM:
            assert job.port in opened, job.name
    kube_prometheus_stack = site.current().kube_prometheus_stack
    # One peer with both selectors: Prometheus pods in the monitoring namespace, not the whole namespace.
    assert rule["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube_prometheus_stack.namespace}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }]


@pytest.mark.parametrize("container", containers(), ids=lambda c: c["name"])
def test_every_container_drops_everything_it_does_not_need(container):
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # Only the GPU exporter runs as root (the kubelet's pod-resources socket is root-only), still without capabilities.
    root = container["name"] == "gpu-exporter"
    assert context["runAsNonRoot"] is (not root)
    assert context["runAsUser"] == (0 if root else k8s.IMAGE_UID)


def test_the_sidecar_component_patches_the_ml_inference_deployment():
    component = yaml.safe_load((K8S / "ml-inference-sidecar" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    assert component["patches"] == [{"path": "patch.yaml", "target": {"kind": "Deployment", "name": "ml-inference"}}]


def test_the_alertmanager_config_is_the_routing_of_alerts_alertmanager_with_secret_references():
    from alerts import alertmanager
    from medobs.deploy import alertmanager_config

    (routing,) = documents("alertmanagerconfig.yaml")
    assert routing == alertmanager_config.alertmanager_config()
    validate_alertmanager_config(routing)
    spec = routing["spec"]
    assert spec["route"]["receiver"] == alertmanager.route()["receiver"]
    assert [r["receiver"] for r in spec["route"]["routes"]] == [r["receiver"] for r in alertmanager.route()["routes"]]
    assert len(spec["inhibitRules"]) == len(alertmanager.inhibit_rules())
    assert [r["name"] for r in spec["receivers"]] == [r["name"] for r in alertmanager.production_receivers()]
    text = (K8S / "alertmanagerconfig.yaml").read_text()
    assert "_file" not in text and "/etc/alertmanager" not in text  # references, not mounted files
    receivers = site.current().receivers
    paging = spec["receivers"][0]["pagerdutyConfigs"][0]
    assert paging["pagerDutyLinkConfigs"][0] == {"href": "{{ .CommonAnnotations.runbook_url }}", "alt": "Runbook"}
    assert paging["routingKey"] == {"name": receivers.pagerduty_routing_key.name, "key": receivers.pagerduty_routing_key.key}


@pytest.mark.parametrize(("text", "parsed"), [
    ('severity="critical"', {"name": "severity", "value": "critical", "matchType": "="}),
    ('alertname=~"A|B"', {"name": "alertname", "value": "A|B", "matchType": "=~"}),
    ('service!~".+"', {"name": "service", "value": ".+", "matchType": "!~"}),
    ('job!="x\\"y"', {"name": "job", "value": 'x"y', "matchType": "!="}),
])
def test_matchers_become_the_crds_name_value_match_type(text, parsed):
    from medobs.deploy import alertmanager_config

    assert alertmanager_config.matcher(text) == parsed


def test_a_credential_outside_a_mounted_secret_is_refused():
    from medobs.deploy import alertmanager_config

    assert alertmanager_config.secret_reference("/etc/alertmanager/secrets/s/k") == {"name": "s", "key": "k"}
    for path in ("/run/secrets/token", "/etc/alertmanager/secrets/only-a-name", "/etc/alertmanager/secrets/s/k/deeper"):
        with pytest.raises(ValueError):
            alertmanager_config.secret_reference(path)


def test_the_alertmanager_config_check_refuses_what_the_operator_does_not_know():
    """The CRD excerpt is closed like the others: Alertmanager's own `links` in a PagerDuty
    receiver, or a child route in the old `match` syntax, fail."""
    import copy

    import jsonschema

    (routing,) = documents("alertmanagerconfig.yaml")
    wrong_field = copy.deepcopy(routing)
    wrong_field["spec"]["receivers"][0]["pagerdutyConfigs"][0]["links"] = [{"href": "x", "text": "y"}]
    old_syntax = copy.deepcopy(routing)
    old_syntax["spec"]["route"]["routes"][0]["match"] = {"severity": "critical"}
    for broken in (wrong_field, old_syntax):
        with pytest.raises(jsonschema.ValidationError):
            validate_alertmanager_config(broken)
