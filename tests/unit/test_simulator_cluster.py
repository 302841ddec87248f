"""The simulated cluster: cAdvisor, kube-state-metrics and cert-manager as the platform would show
them, following the traffic, reproducible from the seed, and changed by the scenarios that the
Kubernetes alerts watch for."""

import pytest

from medobs.core.catalog import kubernetes as k8s
from medobs.simulator import cluster_metrics
from medobs.simulator.cluster import (
    BACKOFF_START,
    GATEWAY,
    MODEL_SERVER,
    RUNS_BEFORE_CRASH,
    STABILISATION_SECONDS,
    TF_SERVING,
    Cluster,
    Work,
)
from medobs.simulator.micrometer import exposition
from medobs.simulator.scenarios import SCENARIOS, Knobs

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400


class Platform:
    """What the cluster reads: the knobs and the work done, set by the test."""

    def __init__(self, knobs: Knobs | None = None):
        self.knobs = knobs or Knobs()
        self.done = Work()

    def cluster(self, seed: int = 7) -> Cluster:
        return Cluster(seed, lambda: self.knobs, lambda: self.done, START)

    def serve(self, cluster: Cluster, seconds: float, every: float = 15.0, *, rate: float = 10.0,
              backlog: int = 0, since: float = 0.0) -> float:
        """Run ``rate`` gateway requests/s (the traffic mix: 58 % for the study service, 2 predicts/s
        and 2 settled messages/s per 10) for ``seconds``, observing every ``every`` s; returns the end."""
        now = since
        while now < since + seconds:
            now = min(now + every, since + seconds)
            self.done = Work(
                requests=self.done.requests + round(rate * every),
                study_requests=self.done.study_requests + round(0.58 * rate * every),
                predictions=self.done.predictions + round(0.4 * rate * every),
                messages=self.done.messages + round(0.2 * rate * every),
                backlog=backlog,
            )
            cluster.advance(START + now)
        return now


def samples(families, metric: str, **labels: str) -> list:
    return [s for f in families for s in f.samples
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]


def value(families, metric: str, **labels: str) -> float:
    (sample,) = samples(families, metric, **labels)
    return sample.value


def state(cluster: Cluster, at: float) -> list:
    return cluster_metrics.kube_state_metrics(cluster, START + at)


def test_the_platform_as_kube_state_metrics_shows_it():
    platform = Platform()
    cluster = platform.cluster()
    found = state(cluster, 1)
    ready = {s.labels["deployment"]: s.value for s in samples(found, k8s.DEPLOYMENT_READY.name)}
    assert ready == {GATEWAY: 3, "study-service": 2, MODEL_SERVER: 2}
    assert value(found, k8s.HPA_MIN.name, horizontalpodautoscaler="api-gateway-hpa") == 3
    assert value(found, k8s.HPA_MAX.name, horizontalpodautoscaler="api-gateway-hpa") == 10
    assert value(found, k8s.HPA_MAX.name, horizontalpodautoscaler="keda-hpa-ml-inference-scaler") == 5
    containers = {s.labels["container"] for s in samples(found, k8s.RESTARTS.name, namespace="medical-platform")}
    assert containers == {GATEWAY, "study-service", TF_SERVING, "inference-worker", "inference-exporter"}
    # every pod: Running, ready, on a node, owned by its ReplicaSet, pod-template-hash style name
    for info in samples(found, k8s.POD_INFO.name):
        pod = info.labels["pod"]
        assert info.labels["created_by_kind"] == "ReplicaSet" and pod.startswith(info.labels["created_by_name"] + "-")
        assert value(found, k8s.POD_PHASE.name, pod=pod, phase="Running") == 1
        assert value(found, k8s.POD_READY.name, pod=pod, condition="true") == 1
    ml_nodes = {s.labels["node"] for s in samples(found, k8s.POD_INFO.name) if s.labels["pod"].startswith(MODEL_SERVER)}
    assert ml_nodes == {"gpu-node-1", "gpu-node-2"}  # the T4 nodes
    assert not samples(found, k8s.CONTAINER_WAITING_REASON.name)
    expiry = value(cluster_metrics.cert_manager(cluster, START + 1), k8s.CERT_EXPIRATION.name, name="api-tls-cert")
    assert expiry == START + 60 * DAY


def test_the_same_seed_gives_the_same_cluster_and_another_seed_another():
    def run(seed):
        platform = Platform()
        cluster = platform.cluster(seed)
        end = platform.serve(cluster, 120, rate=12)
        return b"".join(exposition(view(cluster, START + end))[0] for view in
                        (cluster_metrics.cadvisor, cluster_metrics.kube_state_metrics, cluster_metrics.cert_manager))

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_cpu_network_and_disk_follow_the_traffic_over_the_ready_pods():
    platform = Platform()
    cluster = platform.cluster()
    platform.serve(cluster, 15)
    before = cluster_metrics.cadvisor(cluster, START + 15)
    platform.serve(cluster, 60, since=15)  # 600 requests over 3 gateway pods
    after = cluster_metrics.cadvisor(cluster, START + 75)
    gateway = next(iter(cluster.deployments[GATEWAY].pods))
    spec = gateway.containers[GATEWAY].spec
    used = (value(after, k8s.CPU.name, pod=gateway.name, container=GATEWAY)
            - value(before, k8s.CPU.name, pod=gateway.name, container=GATEWAY))
    assert used == pytest.approx(spec.idle_cores * 60 + spec.cpu_seconds_per_unit * 600 / 3)
    received = (value(after, k8s.NETWORK_RECEIVE.name, pod=gateway.name)
                - value(before, k8s.NETWORK_RECEIVE.name, pod=gateway.name))
    assert received == pytest.approx(spec.received_bytes_per_unit * 200)
    assert value(after, k8s.FS_WRITES.name, pod=gateway.name, container=GATEWAY) > value(
        before, k8s.FS_WRITES.name, pod=gateway.name, container=GATEWAY)
    # the pod's own cgroup (container="") sums its containers: the dashboards filter it out
    for pod in cluster.deployments[MODEL_SERVER].pods:
        per_container = sum(s.value for s in samples(after, k8s.CPU.name, pod=pod.name) if s.labels["container"])
        assert value(after, k8s.CPU.name, pod=pod.name, container="") == pytest.approx(per_container)
        assert {s.labels["container"] for s in samples(after, k8s.NETWORK_RECEIVE.name, pod=pod.name)} == {""}
    # cAdvisor's label set and its sample timestamps
    sample = samples(after, k8s.CPU.name, container=GATEWAY)[0]
    assert set(sample.labels) == set(k8s.CPU.labels) and sample.labels["cpu"] == "total"
    assert sample.labels["id"].startswith("/kubepods/burstable/pod") and sample.timestamp == START + 75


def test_a_gateway_replica_failing_readiness(tmp_path):
    platform = Platform(SCENARIOS["gateway-replica-down"].knobs)
    cluster = platform.cluster()
    found = state(cluster, 15)
    assert value(found, k8s.DEPLOYMENT_READY.name, deployment=GATEWAY) == 2  # ApiGatewayReplicasLow: < 3
    assert value(found, k8s.DEPLOYMENT_UNAVAILABLE.name, deployment=GATEWAY) == 1
    assert value(found, k8s.DEPLOYMENT_DESIRED.name, deployment=GATEWAY) == 3
    down = cluster.deployments[GATEWAY].pods[0]
    assert value(found, k8s.POD_READY.name, pod=down.name, condition="false") == 1
    before = down.containers[GATEWAY].cpu_seconds
    platform.serve(cluster, 60, since=15)
    assert down.containers[GATEWAY].cpu_seconds - before == pytest.approx(
        down.containers[GATEWAY].spec.idle_cores * 60)  # the Service sends it nothing
    platform.knobs = Knobs()
    assert value(state(cluster, 90), k8s.DEPLOYMENT_READY.name, deployment=GATEWAY) == 3


def test_a_crash_looping_model_server_restarts_with_the_kubelets_back_off():
    platform = Platform(SCENARIOS["crash-loop"].knobs)
    cluster = platform.cluster()
    pod = cluster.deployments[MODEL_SERVER].pods[0]
    container = pod.containers[TF_SERVING]
    restarts, first_id = container.restarts, container.container_id
    # exits 5 s after the fault starts, back in 10 s, exits 5 s later, back in 20 s, ...
    crash, times = RUNS_BEFORE_CRASH, []
    backoff = BACKOFF_START
    for _ in range(3):
        times.append(crash + backoff)
        crash, backoff = crash + backoff + RUNS_BEFORE_CRASH, backoff * 2
    waiting = state(cluster, RUNS_BEFORE_CRASH + 1)
    assert value(waiting, k8s.CONTAINER_WAITING_REASON.name, pod=pod.name, container=TF_SERVING,
                 reason="CrashLoopBackOff") == 1
    assert value(waiting, k8s.DEPLOYMENT_READY.name, deployment=MODEL_SERVER) == 1
    assert not samples(cluster_metrics.cadvisor(cluster, START + RUNS_BEFORE_CRASH + 2), k8s.CPU.name,
                       pod=pod.name, container=TF_SERVING)  # no cgroup while it waits
    assert value(state(cluster, times[0] - 0.5), k8s.RESTARTS.name, pod=pod.name, container=TF_SERVING) == restarts
    running = cluster_metrics.cadvisor(cluster, START + times[0] + 1)
    (series,) = samples(running, k8s.CPU.name, pod=pod.name, container=TF_SERVING)
    assert series.labels["name"] != first_id and series.value < 1  # a new container, counters from zero
    third = state(cluster, times[2] + 0.5)
    assert value(third, k8s.RESTARTS.name, pod=pod.name, container=TF_SERVING) == restarts + 3
    # ContainerRestarting: 3 restarts within 30 minutes, here in under two
    assert times[2] < 120
    platform.knobs = Knobs()
    recovered = state(cluster, times[2] + 600)
    assert value(recovered, k8s.RESTARTS.name, pod=pod.name, container=TF_SERVING) <= restarts + 4
    assert value(recovered, k8s.DEPLOYMENT_READY.name, deployment=MODEL_SERVER) == 2
    assert not samples(recovered, k8s.CONTAINER_WAITING_REASON.name)


def test_the_gateway_hpa_scales_with_load_and_waits_before_scaling_down():
    platform = Platform()
    cluster = platform.cluster()
    end = platform.serve(cluster, 120, rate=10)
    assert len(cluster.deployments[GATEWAY].pods) == 3  # 10 requests/s: the minimum
    end = platform.serve(cluster, 120, rate=50, since=end)
    found = state(cluster, end)
    assert value(found, k8s.HPA_CURRENT.name, horizontalpodautoscaler="api-gateway-hpa") == 10  # HpaAtMaxReplicas
    assert value(found, k8s.DEPLOYMENT_DESIRED.name, deployment=GATEWAY) == 10
    end = platform.serve(cluster, STABILISATION_SECONDS - 30, rate=10, since=end)
    found = state(cluster, end)
    assert value(found, k8s.HPA_CURRENT.name, horizontalpodautoscaler="api-gateway-hpa") == 10
    assert value(found, k8s.HPA_DESIRED.name, horizontalpodautoscaler="api-gateway-hpa") < 10
    end = platform.serve(cluster, 120, rate=10, since=end)
    assert len(cluster.deployments[GATEWAY].pods) < 10


def test_keda_scales_ml_inference_on_the_backlog():
    platform = Platform(SCENARIOS["consumer-stall"].knobs)
    cluster = platform.cluster()
    end = platform.serve(cluster, 30, backlog=45)
    found = state(cluster, end)
    assert value(found, k8s.HPA_CURRENT.name, horizontalpodautoscaler="keda-hpa-ml-inference-scaler") == 5
    assert value(found, k8s.DEPLOYMENT_DESIRED.name, deployment=MODEL_SERVER) == 5
    end = platform.serve(cluster, STABILISATION_SECONDS + 30, backlog=0, since=end)
    assert len(cluster.deployments[MODEL_SERVER].pods) == 2


def test_an_unavailable_model_fails_the_readiness_of_every_model_server():
    platform = Platform(SCENARIOS["model-unavailable"].knobs)
    found = state(platform.cluster(), 15)
    assert value(found, k8s.DEPLOYMENT_READY.name, deployment=MODEL_SERVER) == 0
    assert value(found, k8s.DEPLOYMENT_READY.name, deployment=GATEWAY) == 3


def test_a_certificate_that_is_not_renewed():
    platform = Platform()
    cluster = platform.cluster()
    platform.knobs = SCENARIOS["certificate-expiring"].knobs
    found = cluster_metrics.cert_manager(cluster, START + 100)
    expiry = value(found, k8s.CERT_EXPIRATION.name, name="api-tls-cert", issuer_kind="ClusterIssuer")
    assert expiry == START + 100 + 10 * DAY  # CertificateExpiringSoon: less than 14 days
    assert value(found, k8s.CERT_RENEWAL.name, name="api-tls-cert") < START + 100  # renewal overdue
    assert value(found, k8s.CERT_READY.name, name="api-tls-cert", condition="True") == 1
    later = cluster_metrics.cert_manager(cluster, START + 3600)
    assert value(later, k8s.CERT_EXPIRATION.name, name="api-tls-cert") == expiry  # time runs out
