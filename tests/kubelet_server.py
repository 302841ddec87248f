"""A kubelet pod-resources API for the tests: grpcio's server on a unix socket, canned answers.

The answers are encoded by the protobuf runtime from the kubelet's v1 message definitions
(built here as descriptors, with the fields attribution does not read: cpu_ids, memory,
topology), so the exporter's own wire-format reader is checked against an independent encoder.
"""

from concurrent import futures

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

U0 = "GPU-00000000-5d3c-4c3a-9d0e-000000000000"
U1 = "GPU-00000001-5d3c-4c3a-9d0e-000000000001"

_T = descriptor_pb2.FieldDescriptorProto
_MESSAGES = {  # the kubelet's pkg/apis/podresources/v1/api.proto
    "ListPodResourcesResponse": [("pod_resources", 1, _T.TYPE_MESSAGE, ".v1.PodResources", True)],
    "PodResources": [
        ("name", 1, _T.TYPE_STRING, None, False), ("namespace", 2, _T.TYPE_STRING, None, False),
        ("containers", 3, _T.TYPE_MESSAGE, ".v1.ContainerResources", True),
    ],
    "ContainerResources": [
        ("name", 1, _T.TYPE_STRING, None, False), ("devices", 2, _T.TYPE_MESSAGE, ".v1.ContainerDevices", True),
        ("cpu_ids", 3, _T.TYPE_INT64, None, True), ("memory", 4, _T.TYPE_MESSAGE, ".v1.ContainerMemory", True),
    ],
    "ContainerDevices": [
        ("resource_name", 1, _T.TYPE_STRING, None, False), ("device_ids", 2, _T.TYPE_STRING, None, True),
        ("topology", 3, _T.TYPE_MESSAGE, ".v1.TopologyInfo", False),
    ],
    "ContainerMemory": [
        ("memory_type", 1, _T.TYPE_STRING, None, False), ("size", 2, _T.TYPE_UINT64, None, False),
        ("topology", 3, _T.TYPE_MESSAGE, ".v1.TopologyInfo", False),
    ],
    "TopologyInfo": [("nodes", 1, _T.TYPE_MESSAGE, ".v1.NUMANode", True)],
    "NUMANode": [("ID", 1, _T.TYPE_INT64, None, False)],
}


def _message_classes():
    proto = descriptor_pb2.FileDescriptorProto(name="podresources_v1_test.proto", package="v1", syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            field = message.field.add(
                name=field_name, number=number, type=kind,
                label=_T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"v1.{name}")) for name in _MESSAGES}


PB = _message_classes()


def pod(namespace, name, *containers):
    return PB["PodResources"](name=name, namespace=namespace, containers=list(containers))


def container(name, *devices):
    return PB["ContainerResources"](
        name=name, cpu_ids=[2, 3], devices=list(devices),
        memory=[PB["ContainerMemory"](memory_type="memory", size=1 << 30, topology=PB["TopologyInfo"](nodes=[PB["NUMANode"](ID=0)]))],
    )


def devices(resource, *ids):
    return PB["ContainerDevices"](resource_name=resource, device_ids=list(ids), topology=PB["TopologyInfo"](nodes=[PB["NUMANode"](ID=1)]))


NODE = PB["ListPodResourcesResponse"](pod_resources=[
    pod("medical-platform", "ml-inference-7d9f", container("tf-serving", devices("nvidia.com/gpu", U0))),
    pod("medical-platform", "ml-batch-1", container("worker", devices("nvidia.com/gpu", f"{U1}::0"))),
    pod("research", "notebook-2", container("jupyter", devices("nvidia.com/gpu", f"{U1}::3"))),
    pod("medical-platform", "preprocess-0", container("cpu-only")),
    pod("kube-system", "sriov-agent", container("agent", devices("intel.com/sriov_netdevice", "0000:5e:00.1"))),
])


class Kubelet:
    """A gRPC PodResourcesLister on a unix socket; ``answer`` decides each List call."""

    def __init__(self, path):
        self.path = path
        self.answer = lambda request, context: NODE.SerializeToString()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))

        def list_pods(request, context):
            assert request == b""  # ListPodResourcesRequest is empty
            return self.answer(request, context)

        handler = grpc.unary_unary_rpc_method_handler(list_pods)  # bytes in, bytes out
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("v1.PodResourcesLister", {"List": handler}),))
        self.server.add_insecure_port(f"unix:{path}")
        self.server.start()

    def stop(self):
        self.server.stop(grace=None).wait()


@pytest.fixture
def kubelet(tmp_path):
    server = Kubelet(str(tmp_path / "kubelet.sock"))
    yield server
    server.stop()
