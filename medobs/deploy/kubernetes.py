"""Kubernetes manifests for the package's own processes in the platform's cluster.

- ``build/k8s/exporters.yaml``: the GPU exporter DaemonSet on the T4 nodes (host PID namespace
  for per-process memory, the kubelet pod-resources socket for pod attribution, NVML through the
  NVIDIA container runtime without taking a GPU) and the queue exporter Deployment + Service;
- ``build/k8s/ml-inference-sidecar/``: a kustomize Component whose strategic-merge patch adds the
  inference sidecar to the platform's ``ml-inference`` Deployment (not ours, so not a resource of
  the base: an overlay that has the Deployment includes the component; ``kubectl patch deployment
  ml-inference --patch-file build/k8s/ml-inference-sidecar/patch.yaml`` does the same by hand);
- ``build/k8s/dashboards.yaml``: each Grafana dashboard the build writes under grafana/dashboards/
  as a ConfigMap that kube-prometheus-stack's Grafana sidecar loads (label ``grafana_dashboard:
  "1"``, the site's folder in the sidecar's folder annotation);
- ``build/k8s/alertmanagerconfig.yaml``: the routing (:mod:`medobs.deploy.alertmanager_config`);
- ``build/k8s/kustomization.yaml``: the kustomize base listing every generated object file;
- ``build/k8s/networkpolicy-scrape.yaml``: lets the Prometheus pods (only those, in the monitoring
  namespace) reach the metrics ports, which the platform's NetworkPolicies (ingress only from
  ingress-nginx) block.

Every container runs as a non-root user without capabilities, privilege escalation or a writable
root filesystem, under the runtime's default seccomp profile (:func:`container_security`) — except
that the GPU exporter runs as uid 0 (still without any capability) because the kubelet's
pod-resources socket accepts only root (docs/kubernetes.md).

Ports, labels and namespaces come from :mod:`medobs.core.scrape_jobs` and the site, so these
manifests and the scrape configuration cannot drift apart; container arguments are medobs's own flags.
"""

from __future__ import annotations

from typing import Any

from medobs import __version__
from medobs.core import scrape_jobs, site
from medobs.core.catalog.tfserving import MODEL
from medobs.core.output import to_yaml, to_yaml_documents
from medobs.deploy.alertmanager_config import alertmanager_config

T4_NODES = {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
POD_RESOURCES_DIR = "/var/lib/kubelet/pod-resources"
RABBITMQ_SECRET = "rabbitmq-monitoring"
#: The label and value kube-prometheus-stack's Grafana sidecar loads dashboard ConfigMaps by.
DASHBOARD_LABEL = ("grafana_dashboard", "1")
#: The annotation naming a dashboard's folder (the sidecar's ``folderAnnotation``).
FOLDER_ANNOTATION = "grafana_folder"
#: The uid of the ``medobs`` user of the images (Dockerfile).
IMAGE_UID = 10001
SIDECAR_COMPONENT = "k8s/ml-inference-sidecar"
#: Where the Secret of the site's ``exporter_tls.web_config`` is mounted in every medobs container.
WEB_CONFIG_DIR = "/etc/medobs/web"
WEB_CONFIG_VOLUME = "web-config"
_SOURCE = "medobs/deploy/kubernetes.py"
_SECCOMP = {"type": "RuntimeDefault"}


def _metadata(name: str, app: str) -> dict[str, Any]:
    return scrape_jobs.kubernetes_metadata(name, {"app": app})


def image(target: str) -> str:
    """The image of a Dockerfile target (``gpu``, ``queue``, ``inference``): the package with only
    that target's extra installed, tagged ``<version>-<target>``, from the site's ``image``."""
    return f"{site.current().image}:{__version__}-{target}"


def container_security(*, as_root: bool = False) -> dict[str, Any]:
    """A container's securityContext: no capability, no privilege escalation, read-only root
    filesystem, RuntimeDefault seccomp; the image's non-root user unless ``as_root``."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": not as_root,
        "runAsUser": 0 if as_root else IMAGE_UID,
        "seccompProfile": _SECCOMP,
    }


def pod_security(*, as_root: bool = False) -> dict[str, Any]:
    """The pod-level securityContext matching :func:`container_security`."""
    return {"runAsNonRoot": not as_root, "runAsUser": 0 if as_root else IMAGE_UID, "seccompProfile": _SECCOMP}


def _container(name: str, job: scrape_jobs.ScrapeJob, args: list[str], *, as_root: bool = False,
               **extra: Any) -> dict[str, Any]:
    """A medobs container running ``medobs exporter EXPORTER ...`` (``args``) in the image of the
    exporter (its name is its extra and its Dockerfile target), serving ``job``'s metrics port,
    probed on /healthz."""
    probe: dict[str, Any] = {"httpGet": {"path": "/healthz", "port": job.port}, "periodSeconds": 10}
    tls = site.current().exporter_tls
    if tls is not None:
        # /healthz needs no basic auth; the kubelet does not verify the certificate.
        probe["httpGet"]["scheme"] = "HTTPS"
        args = [*args, "--web.config.file", f"{WEB_CONFIG_DIR}/{tls.web_config.key}"]
        mount = {"name": WEB_CONFIG_VOLUME, "mountPath": WEB_CONFIG_DIR, "readOnly": True}
        extra["volumeMounts"] = [*extra.get("volumeMounts", []), mount]
    return {
        "name": name,
        "image": image(args[1]),
        "args": args,
        "ports": [{"name": "metrics", "containerPort": job.port}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "securityContext": container_security(as_root=as_root),
        **extra,
    }


def _volumes(volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A pod's ``volumes``, with the exporters' web configuration Secret when the site has one."""
    tls = site.current().exporter_tls
    if tls is None:
        return volumes
    return [*volumes, {"name": WEB_CONFIG_VOLUME, "secret": {"secretName": tls.web_config.name}}]


def gpu_exporter() -> dict[str, Any]:
    job = scrape_jobs.job("gpu")
    # What NVML needs: the device nodes (/dev/nvidiactl, /dev/nvidia*, mode 0666) and the driver's
    # library, both injected by the NVIDIA container runtime (NVIDIA_VISIBLE_DEVICES=all) without
    # allocating a GPU, and no capability. Per-process memory names host pids: hostPID, and
    # /proc/<pid>/cgroup (world-readable) to find their pods. Root (uid 0, still no capability) is
    # needed only to connect to the kubelet's pod-resources socket (root-owned, mode 0755).
    container = _container(
        "gpu-exporter", job, ["exporter", "gpu", "--listen", f":{job.port}"], as_root=True,
        env=[
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            # The NVIDIA runtime mounts the driver's NVML library without allocating a GPU.
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"},
        ],
        resources={"requests": {"cpu": "20m", "memory": "48Mi"}, "limits": {"memory": "96Mi"}},
        volumeMounts=[{"name": "pod-resources", "mountPath": POD_RESOURCES_DIR, "readOnly": True}],
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata("gpu-exporter", job.k8s_app),
        "spec": {
            "selector": {"matchLabels": {"app": job.k8s_app}},
            "template": {
                "metadata": {"labels": {"app": job.k8s_app}},
                "spec": {
                    "hostPID": True,  # per-process GPU memory names host pids
                    "securityContext": pod_security(as_root=True),
                    "nodeSelector": T4_NODES,
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": _volumes([{"name": "pod-resources", "hostPath": {"path": POD_RESOURCES_DIR}}]),
                },
            },
        },
    }


def queue_exporter() -> list[dict[str, Any]]:
    job = scrape_jobs.job("rabbitmq")
    secret = "/etc/medobs/rabbitmq"
    container = _container(
        "queue-exporter", job,
        ["exporter", "queue", "--listen", f":{job.port}", "--rabbitmq-url", "http://rabbitmq:15672"],
        env=[
            {"name": "RABBITMQ_USER", "valueFrom": {"secretKeyRef": {"name": RABBITMQ_SECRET, "key": "username"}}},
            {"name": "RABBITMQ_PASSWORD_FILE", "value": f"{secret}/password"},
        ],
        resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        volumeMounts=[{"name": "rabbitmq-credentials", "mountPath": secret, "readOnly": True}],
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata("rabbitmq-exporter", job.k8s_app),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": job.k8s_app}},
            "template": {
                "metadata": {"labels": {"app": job.k8s_app}},
                "spec": {
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": _volumes([{
                        "name": "rabbitmq-credentials",
                        "secret": {"secretName": RABBITMQ_SECRET, "items": [{"key": "password", "path": "password"}]},
                    }]),
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata("rabbitmq-exporter", job.k8s_app),
        "spec": {
            "selector": {"app": job.k8s_app},
            "ports": [{"name": "metrics", "port": job.port, "targetPort": "metrics"}],
        },
    }
    return [deployment, service]


def inference_sidecar_patch() -> dict[str, Any]:
    job = scrape_jobs.job("inference-exporter")
    tfserving = scrape_jobs.job("ml-inference")
    container = _container(
        "inference-exporter", job,
        [
            "exporter", "inference", "--listen", f":{job.port}",
            "--tfserving-url", f"http://127.0.0.1:{tfserving.port}", "--model", MODEL,
            "--proxy-listen", f":{scrape_jobs.INFERENCE_PROXY_PORT}",
        ],
        resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "160Mi"}},
    )
    container["ports"].append({"name": "predict-proxy", "containerPort": scrape_jobs.INFERENCE_PROXY_PORT})
    pod: dict[str, Any] = {"containers": [container]}
    if volumes := _volumes([]):
        pod["volumes"] = volumes  # merged into the Deployment's own by name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": tfserving.k8s_app, "namespace": scrape_jobs.namespace()},
        "spec": {"template": {"spec": pod}},
    }


def sidecar_component() -> dict[str, Any]:
    """The kustomize Component applying :func:`inference_sidecar_patch` to the ml-inference Deployment."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "patches": [{
            "path": "patch.yaml",
            "target": {"kind": "Deployment", "name": scrape_jobs.job("ml-inference").k8s_app},
        }],
    }


def scrape_network_policy() -> dict[str, Any]:
    """Ingress from the Prometheus pods (by the site's labels, in the monitoring namespace) to
    every metrics port of the platform's namespace."""
    ports = sorted({j.port for j in scrape_jobs.own_jobs()
                    if j.k8s_kind in ("pod", "service") and j.k8s_namespace == scrape_jobs.PLATFORM})
    kube_prometheus_stack = site.current().kube_prometheus_stack
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": scrape_jobs.kubernetes_metadata("allow-prometheus-scrape"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": kube_prometheus_stack.namespace}},
                    "podSelector": {"matchLabels": dict(kube_prometheus_stack.prometheus_pod_labels)},
                }],
                "ports": [{"protocol": "TCP", "port": port} for port in ports],
            }],
        },
    }


def dashboard_config_map(name: str, dashboard_json: str) -> dict[str, Any]:
    """The ConfigMap holding one dashboard's JSON for the Grafana sidecar, filed in the site's folder."""
    label, value = DASHBOARD_LABEL
    metadata = scrape_jobs.kubernetes_metadata(f"medobs-dashboard-{name}", {label: value}, picked_up=True)
    metadata["annotations"] = {FOLDER_ANNOTATION: site.current().grafana.folder}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {f"medobs-{name}.json": dashboard_json}}


def kustomization(files: list[str]) -> dict[str, Any]:
    """The kustomize base: every generated object file under k8s/ (``files``, relative to build/)."""
    resources = sorted(path.removeprefix("k8s/") for path in files
                       if path.startswith("k8s/") and path.count("/") == 1 and path != "k8s/kustomization.yaml")
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}


def assembled_files(built: dict[str, str], dashboards_dir: str) -> dict[str, str]:
    """The k8s/ files made from the rest of the build: the dashboards' ConfigMaps (from the JSON
    the build writes under ``dashboards_dir``) and the kustomization listing every k8s/ file."""
    prefix = f"{dashboards_dir}/"
    boards = {path.removeprefix(prefix).removesuffix(".json"): text for path, text in built.items()
              if path.startswith(prefix) and path.endswith(".json")}
    files = {"k8s/dashboards.yaml": to_yaml_documents(
        [dashboard_config_map(name, text) for name, text in sorted(boards.items())], source="dashboards/")}
    files["k8s/kustomization.yaml"] = to_yaml(kustomization([*built, *files]), source=_SOURCE)
    return files


def build_files() -> dict[str, str]:
    return {
        "k8s/alertmanagerconfig.yaml": to_yaml_documents([alertmanager_config()], source="alerts/alertmanager.py"),
        "k8s/exporters.yaml": to_yaml_documents([gpu_exporter(), *queue_exporter()], source=_SOURCE),
        f"{SIDECAR_COMPONENT}/patch.yaml": to_yaml(inference_sidecar_patch(), source=_SOURCE),
        f"{SIDECAR_COMPONENT}/kustomization.yaml": to_yaml(sidecar_component(), source=_SOURCE),
        "k8s/networkpolicy-scrape.yaml": to_yaml_documents([scrape_network_policy()], source=_SOURCE),
    }
