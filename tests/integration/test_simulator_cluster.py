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
)
from medobs.simulator.micrometer import exposition
from medobs.simulator.scenarios import SCENARIOS, Knobs
from tests.conftest import require_binary
from tests.simulator_support import running_platform, sample_sum, scrape, wait_for
from tests.unit.test_simulator_cluster import START, Platform, samples, value


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
