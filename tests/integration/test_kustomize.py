"""Acceptance of issue 15: a site unlike the seed, `medobs build --config`, `kubectl kustomize
OUT/k8s`, and everything kube-prometheus-stack needs is in what kustomize renders; the example
overlay of docs/kubernetes.md renders too."""

import json
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from tests.conftest import DATA, REPO, medobs, require_binary
from tests.crd_support import crd_validator, validate_alertmanager_config

KUBERNETES_VERSION = "1.27"
SITE = {
    "namespace": "radiology",
    "cluster": "eu-west-3",
    "runbook_base_url": "https://wiki.example.org/medobs/runbooks",
    "image": "mirror.example.org/observability/medobs",
    "grafana": {"url": "https://grafana.example.org", "folder": "Radiology", "datasource_uid": "kps-prometheus"},
    "kube_prometheus_stack": {"release": "kps", "namespace": "observability", "scrapes_cluster": True},
    "receivers": {
        "ticket_token": {"name": "radiology-alerting", "key": "ticket-token"},
        "ticket_url": "http://jiralert.observability.svc:9097/alert",
        "heartbeat_url": "https://heartbeat.example.org/api/v1/alertmanager",
    },
}
MONITORING_KINDS = {"PrometheusRule", "ServiceMonitor", "PodMonitor"}


class _Loader(yaml.SafeLoader):
    """kustomize writes the matcher ``matchType: =`` unquoted, a plain string in YAML 1.2; PyYAML
    (YAML 1.1) reads a bare ``=`` as its "value" tag and has no constructor for it."""


_Loader.add_constructor("tag:yaml.org,2002:value", yaml.SafeLoader.construct_scalar)


def kustomize(folder) -> list[dict]:
    rendered = subprocess.run([require_binary("kubectl"), "kustomize", str(folder)],
                              capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    return [d for d in yaml.load_all(rendered.stdout, Loader=_Loader) if d]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    (folder / "site.yaml").write_text(yaml.safe_dump(SITE))
    medobs("build", "--config", str(folder / "site.yaml"), "--out", str(folder / "out"), check=True)
    return folder / "out"


@pytest.fixture(scope="module")
def objects(built):
    return kustomize(built / "k8s")


def containers(objects: list[dict]) -> list[dict]:
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "DaemonSet")]
    return [c for pod in pods for c in pod["containers"]]


def test_the_kustomization_lists_every_generated_object_file(built):
    base = yaml.safe_load((built / "k8s" / "kustomization.yaml").read_text())
    files = sorted(p.name for p in (built / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")
    assert base["resources"] == files


def test_every_object_is_in_the_sites_namespace_and_valid(objects):
    kinds = {o["kind"] for o in objects}
    assert kinds >= {"PrometheusRule", "ServiceMonitor", "PodMonitor", "ConfigMap", "AlertmanagerConfig",
                     "DaemonSet", "Deployment", "Service", "NetworkPolicy"}
    for obj in objects:
        assert obj["metadata"]["namespace"] == "radiology", obj["metadata"]["name"]
        if obj["kind"] in MONITORING_KINDS:
            crd_validator(obj["kind"]).validate(obj)
        elif obj["kind"] == "AlertmanagerConfig":
            validate_alertmanager_config(obj)  # against an excerpt of its CRD (tests/data/schemas/README.md)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kube_prometheus_stack_picks_up_every_rule_monitor_dashboard_and_routing(objects):
    for obj in objects:
        if obj["kind"] in MONITORING_KINDS | {"ConfigMap", "AlertmanagerConfig"}:
            assert obj["metadata"]["labels"]["release"] == "kps", obj["metadata"]["name"]
    (routing,) = [o for o in objects if o["kind"] == "AlertmanagerConfig"]
    assert routing["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert {r["name"] for r in routing["spec"]["receivers"]} >= {routing["spec"]["route"]["receiver"]}
    # Credentials are Secret references of the site, never values.
    ticket = next(r for r in routing["spec"]["receivers"] if r["name"] == "ticket")["webhookConfigs"][0]
    assert ticket["httpConfig"]["authorization"]["credentials"] == {"name": "radiology-alerting", "key": "ticket-token"}
    assert "alertmanager.yml" not in json.dumps(objects)  # no Secret holding a whole alertmanager.yml


def test_dashboards_are_configmaps_the_grafana_sidecar_loads(built, objects):
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    assert {"medobs-dashboard-system-overview", "medobs-dashboard-database", "medobs-dashboard-message-queue"} <= set(maps)
    for name, config_map in maps.items():
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "Radiology"}
        ((key, text),) = config_map["data"].items()
        # The same JSON the build writes for Grafana's own provisioning.
        board = name.removeprefix("medobs-dashboard-")
        assert text == (built / "grafana" / "dashboards" / f"{board}.json").read_text()
        json.loads(text)
        # Fits the last-applied annotation of a client-side `kubectl apply` (256 KiB).
        assert len(json.dumps(config_map)) < 256 * 1024


def test_the_sites_values_reach_everything_and_the_seeds_nothing(objects):
    text = yaml.safe_dump_all(objects)
    for seed in ("medical-platform", "med-diagnosis", "registry.med-diagnosis.com", "medobs-prometheus"):
        assert seed not in text, seed
    runbooks = re.findall(r"runbook_url: (\S+)", text)
    assert runbooks and all(u.startswith("https://wiki.example.org/medobs/runbooks/") for u in runbooks)
    assert all(c["image"].startswith("mirror.example.org/observability/medobs:") for c in containers(objects))
    assert "kps-prometheus" in text
    # kube-prometheus-stack scrapes the cluster: no monitor of ours duplicates its jobs.
    monitors = {o["metadata"]["name"] for o in objects if o["kind"] in ("ServiceMonitor", "PodMonitor")}
    assert monitors.isdisjoint({"cadvisor", "kube-state-metrics", "node"})
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"][0]["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }]


def test_good_neighbours_of_kube_prometheus_stacks_rules(objects):
    theirs = {line.strip() for line in (DATA / "kube_prometheus_stack_alerts.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    rules = [r for o in objects if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"] for r in g["rules"]]
    ours = {r["alert"] for r in rules if "alert" in r}
    assert ours and not ours & theirs
    heartbeats = [r for r in rules if "alert" in r and r["expr"].strip() == "vector(1)"]
    assert heartbeats and all(r["labels"]["severity"] == "none" for r in heartbeats)


def test_every_medobs_container_runs_locked_down(objects):
    for container in containers(objects):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]} and context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert context["runAsNonRoot"] is (container["name"] != "gpu-exporter")


def overlay_from_the_docs() -> dict[str, str]:
    """The files of the example overlay in docs/kubernetes.md (its ```yaml blocks headed `# FILE`)."""
    page = (REPO / "docs" / "kubernetes.md").read_text()
    blocks = re.findall(r"```yaml\n# (overlay/\S+)\n(.*?)```", page, re.S)
    assert blocks, "docs/kubernetes.md has no example overlay"
    return dict(blocks)


def test_the_example_overlay_of_the_docs_renders(built):
    for path, text in overlay_from_the_docs().items():
        target = built.parent / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (built.parent / "overlay" / "base").symlink_to(built / "k8s")
    objects = kustomize(built.parent / "overlay")
    assert {o["metadata"]["namespace"] for o in objects} == {"radiology-staging"}
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "ml-inference"]
    sidecar = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "inference-exporter")
    assert sidecar["resources"]["limits"]["memory"] == "256Mi"  # the overlay's patch of the sidecar
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    (gpu,) = [c for o in objects if o["kind"] == "DaemonSet" for c in o["spec"]["template"]["spec"]["containers"]]
    assert gpu["image"].endswith(":0.9.1-gpu")
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet", "Service", "ConfigMap", "NetworkPolicy"):
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


TLS = {
    "web_config": {"name": "medobs-web", "key": "web-config.yml"},
    "ca": {"name": "medobs-web", "key": "ca.crt"},
    "server_name": "medobs-exporters",
    "basic_auth": {"username": {"name": "medobs-scrape", "key": "username"},
                   "password": {"name": "medobs-scrape", "key": "password"}},
}


def test_exporters_over_tls_with_basic_auth(tmp_path):
    """`exporter_tls`: every medobs container reads the web config from the mounted Secret and is
    probed over HTTPS, and every monitor of a medobs exporter scrapes https with the CA and basic
    auth as Secret references; the other jobs stay plain HTTP."""
    (tmp_path / "site.yaml").write_text(yaml.safe_dump({**SITE, "exporter_tls": TLS}))
    medobs("build", "--config", str(tmp_path / "site.yaml"), "--out", str(tmp_path / "out"), check=True)
    objects = kustomize(tmp_path / "out" / "k8s")
    patch = yaml.safe_load((tmp_path / "out" / "k8s" / "ml-inference-sidecar" / "patch.yaml").read_text())
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "DaemonSet")]
    pods.append(patch["spec"]["template"]["spec"])
    for pod in pods:
        assert {"name": "web-config", "secret": {"secretName": "medobs-web"}} in pod["volumes"]
        (container,) = pod["containers"]
        assert container["args"][-2:] == ["--web.config.file", "/etc/medobs/web/web-config.yml"]
        assert {"name": "web-config", "mountPath": "/etc/medobs/web", "readOnly": True} in container["volumeMounts"]
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet"):
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    monitors = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("ServiceMonitor", "PodMonitor")}
    for name, monitor in monitors.items():
        crd_validator(monitor["kind"]).validate(monitor)
        (endpoint,) = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        if name in ("gpu", "rabbitmq", "inference-exporter"):
            assert endpoint["scheme"] == "https"
            assert endpoint["tlsConfig"] == {"ca": {"secret": {"name": "medobs-web", "key": "ca.crt"}},
                                             "serverName": "medobs-exporters"}
            assert endpoint["basicAuth"]["password"] == {"name": "medobs-scrape", "key": "password"}
        else:
            assert "basicAuth" not in endpoint and endpoint.get("scheme") != "https", name
