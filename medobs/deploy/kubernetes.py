"""Kubernetes manifests for the package's own processes in the platform's cluster.

- ``build/k8s/exporters.yaml``: the GPU exporter DaemonSet on the T4 nodes (host PID namespace
  for per-process memory, the kubelet pod-resources socket for pod attribution, NVML through the
  NVIDIA container runtime without taking a GPU) and the queue exporter Deployment + Service;
- ``build/k8s/ml-inference-sidecar-patch.yaml``: a strategic-merge patch that adds the inference
  sidecar to the ``ml-inference`` Deployment (``kubectl patch deployment ml-inference
  --patch-file ...``), its probe on, its proxy on 8502 for callers that want every request timed;
- ``build/k8s/networkpolicy-scrape.yaml``: lets Prometheus (namespace ``monitoring``) reach the
  metrics ports, which the platform's NetworkPolicies (ingress only from ingress-nginx) block.

Ports, labels and namespaces come from :mod:`medobs.deploy.scrape`, so these manifests and the
scrape configuration cannot drift apart; container arguments are medobs's own flags.
"""

from __future__ import annotations

from typing import Any

from medobs import __version__
from medobs.core import scrape_jobs
from medobs.core.catalog.tfserving import MODEL
from medobs.core.output import to_yaml, to_yaml_documents

REGISTRY = "registry.med-diagnosis.com/medobs"
T4_NODES = {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
POD_RESOURCES_DIR = "/var/lib/kubelet/pod-resources"
RABBITMQ_SECRET = "rabbitmq-monitoring"
_SOURCE = "medobs/deploy/kubernetes.py"


def _metadata(name: str, app: str) -> dict[str, Any]:
    return {"name": name, "namespace": scrape_jobs.NAMESPACE, "labels": {"app": app, "app.kubernetes.io/part-of": "medobs"}}


def image(target: str) -> str:
    """The image of a Dockerfile target (``gpu``, ``queue``, ``inference``): the package with only
    that target's extra installed, tagged ``<version>-<target>``."""
    return f"{REGISTRY}:{__version__}-{target}"


def _container(name: str, job: scrape_jobs.ScrapeJob, args: list[str], **extra: Any) -> dict[str, Any]:
    """A medobs container running ``medobs exporter EXPORTER ...`` (``args``) in the image of the
    exporter (its name is its extra and its Dockerfile target), serving ``job``'s metrics port,
    probed on /healthz."""
    probe = {"httpGet": {"path": "/healthz", "port": job.port}, "periodSeconds": 10}
    return {
        "name": name,
        "image": image(args[1]),
        "args": args,
        "ports": [{"name": "metrics", "containerPort": job.port}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
        **extra,
    }


def gpu_exporter() -> dict[str, Any]:
    job = scrape_jobs.job("gpu")
    container = _container(
        "gpu-exporter", job, ["exporter", "gpu", "--listen", f":{job.port}"],
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
                    "nodeSelector": T4_NODES,
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": [{"name": "pod-resources", "hostPath": {"path": POD_RESOURCES_DIR}}],
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
                    "containers": [container],
                    "volumes": [{
                        "name": "rabbitmq-credentials",
                        "secret": {"secretName": RABBITMQ_SECRET, "items": [{"key": "password", "path": "password"}]},
                    }],
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
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def scrape_network_policy() -> dict[str, Any]:
    """Ingress from the monitoring namespace to every metrics port of the platform's namespace."""
    ports = sorted({j.port for j in scrape_jobs.JOBS if j.k8s_kind in ("pod", "service") and j.k8s_namespace == scrape_jobs.NAMESPACE})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-prometheus-scrape", "namespace": scrape_jobs.NAMESPACE,
                     "labels": {"app.kubernetes.io/part-of": "medobs"}},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": scrape_jobs.MONITORING_NAMESPACE}}}],
                "ports": [{"protocol": "TCP", "port": port} for port in ports],
            }],
        },
    }


def build_files() -> dict[str, str]:
    return {
        "k8s/exporters.yaml": to_yaml_documents([gpu_exporter(), *queue_exporter()], source=_SOURCE),
        "k8s/ml-inference-sidecar-patch.yaml": to_yaml(inference_sidecar_patch(), source=_SOURCE),
        "k8s/networkpolicy-scrape.yaml": to_yaml_documents([scrape_network_policy()], source=_SOURCE),
    }
