"""The simulated cluster's expositions under promtool, and the running simulator serving the
cluster from its own traffic."""

import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from medobs.core.catalog import gateway
from medobs.core.catalog import kubernetes as k8s
from medobs.simulator import cluster_metrics
from medobs.simulator.cluster import (
    GATEWAY,
    MODEL_SERVER,
    Cluster,
    Work,
)
from medobs.simulator.micrometer import exposition
from medobs.simulator.scenarios import SCENARIOS, Knobs
from tests.conftest import require_binary
from tests.simulator_support import running_platform, sample_sum, scrape, wait_for

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


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


@pytest.mark.parametrize("view", ["cadvisor", "kube_state_metrics", "cert_manager"])
def test_promtool_accepts_each_exposition(view):
    platform = Platform(SCENARIOS["crash-loop"].knobs)
    cluster = platform.cluster()
    end = platform.serve(cluster, 60)
    text = exposition(getattr(cluster_metrics, view)(cluster, START + end))[0]
    result = subprocess.run([require_binary("promtool"), "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stdout + result.stderr
    names = {f.name for f in text_string_to_metric_families(text.decode())}
    assert names, "an empty exposition"


@pytest.mark.slow
def test_the_running_simulator_serves_the_cluster_from_its_own_traffic():
    """The platform feeds the cluster what it did (gateway requests, the study service's share,
    TF Serving's predicts, the worker's messages) and serves the three endpoints at their paths."""
    with running_platform(Knobs(request_rate=25)) as platform:
        wait_for(lambda: platform.work().messages >= 10 and platform.work().predictions >= 10, timeout=30)
        platform.apply("test", Knobs(request_rate=0))
        time.sleep(1)  # requests in flight finish
        done = platform.work()
        served = scrape(platform.urls["gateway"] + "/actuator/prometheus")
        assert done.requests == sample_sum(served, gateway.HTTP_SERVER_REQUESTS.count)
        study_uris = {"/api/v1/studies", "/api/v1/studies/{studyId}", "/api/v1/studies/{studyId}/findings"}
        assert done.study_requests == sum(sample_sum(served, gateway.HTTP_SERVER_REQUESTS.count, uri=uri)
                                          for uri in study_uris)
        assert done.predictions == platform.tfserving.answered
        assert done.messages == sum(platform.consumer.counts.values())

        kubelet = scrape(platform.urls["kubelet"] + "/metrics/cadvisor")
        assert samples(kubelet.values(), k8s.CPU.name, container=GATEWAY)
        state_metrics = scrape(platform.urls["kube-state-metrics"] + "/metrics").values()
        gateways = value(state_metrics, k8s.DEPLOYMENT_READY.name, deployment=GATEWAY)
        assert value(state_metrics, k8s.HPA_CURRENT.name, horizontalpodautoscaler="api-gateway-hpa") == gateways
        certificates = scrape(platform.urls["cert-manager"] + "/metrics")
        assert samples(certificates.values(), k8s.CERT_EXPIRATION.name, name="api-tls-cert")
        assert requests.get(platform.urls["kubelet"] + "/metrics", timeout=5).status_code == 404
        status = requests.get(platform.urls["control"] + "/status", timeout=10).json()
        assert status["kubernetes"] == {GATEWAY: f"{gateways:.0f}/{gateways:.0f}", "study-service": "2/2",
                                        MODEL_SERVER: "2/2"}
