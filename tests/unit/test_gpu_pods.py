"""Pod attribution against a real gRPC server (grpcio) on a unix socket, as the kubelet serves it."""

import logging
import socket
import time

import grpc
import pytest

from exporters.gpu import pods
from exporters.gpu.podresources import Allocation, list_allocations
from exporters.gpu.session import Device
from medobs.core.runtime import CollectionError
from tests.fake_pynvml import FakeGpu, FakeNVML
from tests.gpu_support import named, running, samples, scrape, wait_for
from tests.kubelet_server import NODE, PB, U0, U1, container, devices, kubelet, pod  # noqa: F401 (kubelet: a fixture)

MIG0 = "MIG-00000000-0001-4000-8000-000000000001"


def test_list_decodes_the_kubelets_answer(kubelet):
    assert list_allocations(kubelet.path, timeout=5) == [
        Allocation("medical-platform", "ml-inference-7d9f", "tf-serving", "nvidia.com/gpu", U0),
        Allocation("medical-platform", "ml-batch-1", "worker", "nvidia.com/gpu", f"{U1}::0"),
        Allocation("research", "notebook-2", "jupyter", "nvidia.com/gpu", f"{U1}::3"),
        Allocation("kube-system", "sriov-agent", "agent", "intel.com/sriov_netdevice", "0000:5e:00.1"),
    ]


def test_a_large_answer_crosses_http2_flow_control_windows(kubelet):
    many = PB["ListPodResourcesResponse"](pod_resources=[
        pod("medical-platform", f"pod-{i:05d}-" + "x" * 200, container("c", devices("nvidia.com/gpu", f"{U0}::{i}")))
        for i in range(2000)
    ])
    kubelet.answer = lambda request, context: many.SerializeToString()
    found = list_allocations(kubelet.path, timeout=10)
    assert len(many.SerializeToString()) > 4 * 65535
    assert len(found) == 2000 and found[-1].device_id == f"{U0}::1999"


@pytest.mark.parametrize("status,kind", [
    (grpc.StatusCode.PERMISSION_DENIED, "grpc_permission_denied"),
    (grpc.StatusCode.UNIMPLEMENTED, "grpc_unimplemented"),
])
def test_grpc_errors_have_a_bounded_kind(kubelet, status, kind):
    kubelet.answer = lambda request, context: context.abort(status, "no")
    with pytest.raises(CollectionError) as raised:
        list_allocations(kubelet.path, timeout=5)
    assert raised.value.kind == kind


def test_a_malformed_answer_is_malformed(kubelet):
    kubelet.answer = lambda request, context: b"\x0a\x05abc"  # a field longer than the message
    with pytest.raises(CollectionError) as raised:
        list_allocations(kubelet.path, timeout=5)
    assert raised.value.kind == "malformed"


def test_a_slow_kubelet_times_out(kubelet):
    kubelet.answer = lambda request, context: time.sleep(1.5) or NODE.SerializeToString()
    started = time.monotonic()
    with pytest.raises(CollectionError) as raised:
        list_allocations(kubelet.path, timeout=0.3)
    assert raised.value.kind == "timeout" and time.monotonic() - started < 1.0


def test_a_socket_nobody_listens_on_is_a_connection_error(tmp_path):
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)  # the file exists, nothing accepts
    with pytest.raises(CollectionError) as raised:
        list_allocations(path, timeout=1)
    assert raised.value.kind == "connection"


def _device(index, uuid, minor=None):
    return Device(index, None, uuid, "Tesla T4", "", index if minor is None else minor)


@pytest.mark.parametrize("device_id,expected", [
    (U0, U0),
    (f"{U0}::7", U0),  # a time-slicing replica
    ("nvidia1", U1),  # a device name (GKE)
    ("nvidia1/vgpu2", U1),  # GKE time-sharing
    ("nvidia0/gi1", U0),  # GKE MIG
    ("1", U1),  # the device plugin's index strategy
    (MIG0, U0),  # a MIG device belongs to its parent GPU
    (f"{MIG0}::1", U0),
    ("GPU-not-on-this-node", None),
])
def test_device_ids_are_matched_to_gpus(device_id, expected):
    held = pods.attribute(
        [Allocation("ns", "p", "c", "nvidia.com/gpu", device_id)], [_device(0, U0), _device(1, U1)], {MIG0: U0}
    )
    assert held == ({(expected, "ns", "p", "c")} if expected else set())


def test_the_exporter_exposes_one_join_series_per_gpu_and_container(kubelet, tmp_path):
    nvml = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    with running(nvml, tmp_path, pod_resources_socket=kubelet.path) as exporter:
        wait_for(lambda: named(samples(scrape(exporter)), "medobs_gpu_pod_info"))
        values = samples(scrape(exporter))
    assert named(values, "medobs_gpu_pod_info") == {
        f"medobs_gpu_pod_info{{uuid={U0},namespace=medical-platform,pod=ml-inference-7d9f,container=tf-serving}}": 1,
        f"medobs_gpu_pod_info{{uuid={U1},namespace=medical-platform,pod=ml-batch-1,container=worker}}": 1,
        f"medobs_gpu_pod_info{{uuid={U1},namespace=research,pod=notebook-2,container=jupyter}}": 1,
    }
    assert 0 <= values["medobs_gpu_background_age_seconds{task=pods}"] < 2
    # One series per GPU, not one per pod: the utilisation of GPU 1 is there once.
    assert len([key for key in values if key.startswith("medobs_gpu_utilization_ratio") and U1 in key]) == 1


def test_mig_instances_are_attributed_to_their_gpu(kubelet, tmp_path):
    kubelet.answer = lambda request, context: PB["ListPodResourcesResponse"](pod_resources=[
        pod("medical-platform", "ml-small", container("tf", devices("nvidia.com/mig-1g.5gb", MIG0))),
    ]).SerializeToString()
    nvml = FakeNVML([FakeGpu(index=0).all_features()])
    with running(nvml, tmp_path, pod_resources_socket=kubelet.path) as exporter:
        wait_for(lambda: named(samples(scrape(exporter)), "medobs_gpu_pod_info"))
        values = samples(scrape(exporter))
    assert named(values, "medobs_gpu_pod_info") == {
        f"medobs_gpu_pod_info{{uuid={U0},namespace=medical-platform,pod=ml-small,container=tf}}": 1,
    }


def test_a_failing_kubelet_keeps_the_last_attribution_and_counts_errors(kubelet, tmp_path):
    nvml = FakeNVML([FakeGpu(index=0), FakeGpu(index=1)])
    with running(nvml, tmp_path, pod_resources_socket=kubelet.path) as exporter:
        wait_for(lambda: named(samples(scrape(exporter)), "medobs_gpu_pod_info"))
        kubelet.answer = lambda request, context: context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        wait_for(lambda: samples(scrape(exporter)).get("medobs_gpu_background_errors_total{task=pods,kind=grpc_unavailable}"))
        values = samples(scrape(exporter))
    assert len(named(values, "medobs_gpu_pod_info")) == 3
    assert values["medobs_gpu_up"] == 1


def test_without_the_socket_attribution_is_off_and_says_so_once(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="medobs.exporter.gpu"), running(FakeNVML(), tmp_path) as exporter:
        time.sleep(0.5)  # several refreshes
        values = samples(scrape(exporter))
    assert not named(values, "medobs_gpu_pod_info")
    assert "medobs_gpu_background_age_seconds{task=pods}" not in values
    assert caplog.text.count("pod attribution off: no kubelet pod-resources socket at") == 1
