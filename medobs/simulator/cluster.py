"""The simulated platform's Kubernetes side: the pods, deployments, autoscalers and certificate
of namespace ``medical-platform`` whose state cAdvisor, kube-state-metrics and cert-manager
report (:mod:`medobs.simulator.cluster_metrics` writes their expositions)::

    api-gateway     Deployment, HPA api-gateway-hpa: min 3, max 10, CPU 70 % of the request
                    (about 60 % at the default 10 requests/s; about 45 requests/s reach 10)
    study-service   Deployment, 2 replicas
    ml-inference    Deployment on the GPU nodes (containers tensorflow-serving, inference-worker,
                    inference-exporter); KEDA's HPA keda-hpa-ml-inference-scaler: min 2, max 5,
                    medical_data ready messages > 10 per replica
    api-tls-cert    cert-manager Certificate from ClusterIssuer letsencrypt-prod

Resource usage follows the simulated traffic (:class:`Work`): each container spends idle CPU
plus a cost per unit of its work (gateway requests, study requests, predictions, settled
messages), shared by the pods whose container is ready, as a Service spreads requests; memory,
disk and network follow the same units. The autoscalers act on that usage and on the broker's
backlog every 15 s as the HPA controller does (pods that are not ready count as idle when
scaling up; down only after a 5-minute stabilisation).

The knobs put faults in: ``gateway_replicas_down`` gateway pods fail their readiness probe;
``crash_looping`` makes TF Serving of the first ml-inference pod exit 5 s after each start and
the kubelet restart it with its back-off (10 s, doubling to 5 min); ``model_available`` false
fails TF Serving's readiness in every pod; ``certificate_days_left`` is how long the certificate
has left (from when the knob was set: a renewal that is not happening).

Names, uids, container ids and per-pod offsets come from the seed: the same seed, work and
times give the same state.
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from medobs.simulator.chance import stream
from medobs.simulator.scenarios import Knobs

#: Pod and ReplicaSet name suffixes use Kubernetes' SafeEncodeString alphabet (no vowels, no 0/1/3).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MIB = 1024 * 1024

#: The kubelet's crash-loop back-off: 10 s, doubling, at most 5 minutes.
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0
#: How long the crash-looping container runs before it exits again.
RUNS_BEFORE_CRASH = 5.0
#: The HPA controller's sync period, scale-down stabilisation window and tolerance.
HPA_SYNC_SECONDS = 15.0
STABILISATION_SECONDS = 300.0
HPA_TOLERANCE = 0.1
#: cert-manager renews a certificate this long before it expires (a third of Let's Encrypt's 90 days).
CERTIFICATE_DURATION = 90 * 86400.0
RENEW_BEFORE = 30 * 86400.0


@dataclass(frozen=True)
class Work:
    """What the simulated platform has done so far (cumulative), and the broker's backlog now."""

    requests: int = 0  # gateway requests answered
    study_requests: int = 0  # of those, the study service's
    predictions: int = 0  # TF Serving predicts answered
    messages: int = 0  # medical_data deliveries the worker settled
    backlog: int = 0  # ready messages in medical_data: KEDA's queue length


WorkUnit = Literal["requests", "study_requests", "predictions", "messages"]


@dataclass(frozen=True)
class ContainerSpec:
    """A container and what one unit of its work costs it."""

    name: str
    image: str
    work: WorkUnit
    idle_cores: float
    cpu_seconds_per_unit: float
    memory_bytes: float
    memory_bytes_per_unit_rate: float = 0.0  # more working set per unit/s of load
    written_bytes_per_unit: float = 0.0
    read_bytes_per_unit: float = 0.0
    received_bytes_per_unit: float = 0.0
    sent_bytes_per_unit: float = 0.0
    cpu_request_cores: float = 0.25


@dataclass(frozen=True)
class AutoscalerSpec:
    """An HPA: ``cpu`` keeps the first container near ``target`` of its CPU request; ``backlog``
    is KEDA's RabbitMQ trigger (``target`` ready messages per replica)."""

    name: str
    min_replicas: int
    max_replicas: int
    metric: Literal["cpu", "backlog"]
    target: float


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    replicas: int
    containers: tuple[ContainerSpec, ...]
    nodes: tuple[str, ...]
    autoscaler: AutoscalerSpec | None = None


def _image(name: str, tag: str) -> str:
    return f"registry.med-diagnosis.com/platform/{name}:{tag}"


GATEWAY, MODEL_SERVER = "api-gateway", "ml-inference"
TF_SERVING = "tensorflow-serving"
CPU_NODES = ("node-1", "node-2", "node-3")
GPU_NODES = ("gpu-node-1", "gpu-node-2")
ALL_NODES = CPU_NODES + GPU_NODES

DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        GATEWAY, 3,
        (ContainerSpec(GATEWAY, _image(GATEWAY, "3.1.8"), "requests", idle_cores=0.03, cpu_seconds_per_unit=0.035,
                       memory_bytes=640 * MIB, memory_bytes_per_unit_rate=4 * MIB, written_bytes_per_unit=350,
                       received_bytes_per_unit=6_000, sent_bytes_per_unit=7_500, cpu_request_cores=0.25),),
        CPU_NODES,
        AutoscalerSpec("api-gateway-hpa", 3, 10, "cpu", 0.7),
    ),
    DeploymentSpec(
        "study-service", 2,
        (ContainerSpec("study-service", _image("study-service", "2.4.0"), "study_requests", idle_cores=0.02,
                       cpu_seconds_per_unit=0.008, memory_bytes=480 * MIB, memory_bytes_per_unit_rate=2 * MIB,
                       written_bytes_per_unit=220, received_bytes_per_unit=1_500, sent_bytes_per_unit=2_000),),
        CPU_NODES,
    ),
    DeploymentSpec(
        MODEL_SERVER, 2,
        (
            ContainerSpec(TF_SERVING, "tensorflow/serving:2.10.1-gpu", "predictions", idle_cores=0.08,
                          cpu_seconds_per_unit=0.03, memory_bytes=2_900 * MIB, memory_bytes_per_unit_rate=8 * MIB,
                          written_bytes_per_unit=60, received_bytes_per_unit=150_000, sent_bytes_per_unit=900,
                          cpu_request_cores=1.0),
            ContainerSpec("inference-worker", _image("inference-worker", "1.8.2"), "messages", idle_cores=0.01,
                          cpu_seconds_per_unit=0.006, memory_bytes=210 * MIB, written_bytes_per_unit=120,
                          received_bytes_per_unit=800, sent_bytes_per_unit=600),
            ContainerSpec("inference-exporter", _image("medobs", "0.1.0"), "predictions", idle_cores=0.004,
                          cpu_seconds_per_unit=0.0004, memory_bytes=48 * MIB, cpu_request_cores=0.05),
        ),
        GPU_NODES,
        AutoscalerSpec("keda-hpa-ml-inference-scaler", 2, 5, "backlog", 10),
    ),
)


@dataclass
class Container:
    spec: ContainerSpec
    container_id: str
    started: float
    restarts: int = 0
    cpu_seconds: float = 0.0
    read_bytes: float = 0.0
    written_bytes: float = 0.0
    memory_bytes: float = 0.0
    cpu_since_sync: float = 0.0  # CPU seconds since the HPA controller last looked
    waiting_reason: str | None = None  # CrashLoopBackOff while the kubelet backs off
    ready: bool = True
    next_event: float | None = None  # crash loop: when it exits (running) or starts (waiting)
    backoff: float = 0.0

    @property
    def running(self) -> bool:
        return self.waiting_reason is None


@dataclass
class Pod:
    name: str
    uid: str
    deployment: str
    replicaset: str
    node: str
    host_ip: str
    pod_ip: str
    created: float
    memory_factor: float  # each pod's working set differs a little
    containers: dict[str, Container] = field(default_factory=dict)
    # the pod cgroup's counters: every container it ran, and the network namespace
    cpu_seconds: float = 0.0
    read_bytes: float = 0.0
    written_bytes: float = 0.0
    received_bytes: float = 0.0
    sent_bytes: float = 0.0

    @property
    def ready(self) -> bool:
        return all(c.running and c.ready for c in self.containers.values())

    @property
    def cgroup(self) -> str:
        return f"/kubepods/burstable/pod{self.uid}"


@dataclass
class Autoscaler:
    spec: AutoscalerSpec
    desired: int
    last_sync: float
    history: deque[tuple[float, int]] = field(default_factory=deque)


@dataclass
class Deployment:
    spec: DeploymentSpec
    replicaset: str
    pods: list[Pod] = field(default_factory=list)
    autoscaler: Autoscaler | None = None
    created_pods: int = 0

    @property
    def ready_replicas(self) -> int:
        return sum(pod.ready for pod in self.pods)


@dataclass
class Certificate:
    name: str = "api-tls-cert"
    issuer_name: str = "letsencrypt-prod"
    issuer_kind: str = "ClusterIssuer"
    issuer_group: str = "cert-manager.io"
    expiry: float = 0.0
    days_left_knob: float = -1.0  # the knob value the expiry was computed from

    @property
    def renewal(self) -> float:
        return self.expiry - RENEW_BEFORE


class Cluster:
    """The cluster's state, advanced to a given time from the knobs and the work done since.

    Thread-safe: read it inside ``with cluster.observed(now):``.
    """

    def __init__(self, seed: int, knobs: Callable[[], Knobs], work: Callable[[], Work], now: float,
                 specs: tuple[DeploymentSpec, ...] = DEPLOYMENTS):
        self.knobs, self.work = knobs, work
        self._random = stream(seed, "cluster")
        self._seed = seed
        self._lock = threading.RLock()
        self._pod_ips: dict[str, int] = {}
        self.deployments: dict[str, Deployment] = {}
        for spec in specs:
            deployment = Deployment(spec, self._name(10))
            if spec.autoscaler:
                deployment.autoscaler = Autoscaler(spec.autoscaler, max(spec.replicas, spec.autoscaler.min_replicas), now)
            for _ in range(deployment.autoscaler.desired if deployment.autoscaler else spec.replicas):
                # running for a few days already; some containers restarted once since
                self._add_pod(deployment, now, age=self._random.uniform(2, 9) * 86400)
            self.deployments[spec.name] = deployment
        self.certificate = Certificate()
        self._time, self._work = now, work()
        self._apply_knobs(self.knobs(), now)

    # -- reading -------------------------------------------------------------------------------

    @contextmanager
    def observed(self, now: float) -> Iterator[Cluster]:
        """The cluster advanced to ``now``, locked while the caller reads it."""
        with self._lock:
            self.advance(now)
            yield self

    def pods(self) -> Iterator[Pod]:
        for deployment in self.deployments.values():
            yield from deployment.pods

    # -- advancing -----------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        with self._lock:
            elapsed = now - self._time
            if elapsed <= 0:
                return
            knobs, work = self.knobs(), self.work()
            self._apply_knobs(knobs, now)
            self._spend(elapsed, work)
            self._autoscale(now, work)
            self._time, self._work = now, work

    def _apply_knobs(self, knobs: Knobs, now: float) -> None:
        if knobs.certificate_days_left != self.certificate.days_left_knob:
            self.certificate.days_left_knob = knobs.certificate_days_left
            self.certificate.expiry = now + knobs.certificate_days_left * 86400
        self._crash_loop(knobs.crash_looping, now)
        gateway_down = int(knobs.gateway_replicas_down)
        for deployment in self.deployments.values():
            for index, pod in enumerate(deployment.pods):
                for container in pod.containers.values():
                    container.ready = container.running
                if deployment.spec.name == GATEWAY and index < gateway_down:
                    pod.containers[GATEWAY].ready = False  # its readiness probe fails
                if TF_SERVING in pod.containers and not knobs.model_available:
                    pod.containers[TF_SERVING].ready = False  # the probe asks for the model's status

    def _crash_loop(self, looping: bool, now: float) -> None:
        """Crash and restart TF Serving of the first ml-inference pod, with the kubelet's back-off."""
        pods = self.deployments[MODEL_SERVER].pods if MODEL_SERVER in self.deployments else []
        if not pods:
            return
        pod, container = pods[0], pods[0].containers[TF_SERVING]
        if not looping:
            if not container.running:
                self._restart(pod, container, now)
            container.next_event, container.backoff = None, 0.0
            return
        if container.next_event is None:
            container.next_event = now + RUNS_BEFORE_CRASH
        while container.next_event is not None and container.next_event <= now:
            at = container.next_event
            if container.running:
                container.backoff = min(max(2 * container.backoff, BACKOFF_START), BACKOFF_MAX)
                container.waiting_reason, container.memory_bytes = "CrashLoopBackOff", 0.0
                container.next_event = at + container.backoff
            else:
                self._restart(pod, container, at)
                container.next_event = at + RUNS_BEFORE_CRASH

    def _restart(self, pod: Pod, container: Container, at: float) -> None:
        """The kubelet starts the container again: a new container (and cgroup) with fresh counters."""
        container.restarts += 1
        container.container_id = self._container_id(pod, container.spec.name, container.restarts)
        container.started, container.waiting_reason = at, None
        container.cpu_seconds = container.read_bytes = container.written_bytes = 0.0

    def _spend(self, elapsed: float, work: Work) -> None:
        for deployment in self.deployments.values():
            for spec in deployment.spec.containers:
                done = max(0, getattr(work, spec.work) - getattr(self._work, spec.work))
                serving = sum(pod.containers[spec.name].ready for pod in deployment.pods)
                share = done / serving if serving else 0.0
                for pod in deployment.pods:
                    container = pod.containers[spec.name]
                    self._use(pod, container, elapsed, share if container.ready else 0.0)

    @staticmethod
    def _use(pod: Pod, container: Container, elapsed: float, units: float) -> None:
        spec = container.spec
        pod.received_bytes += spec.received_bytes_per_unit * units
        pod.sent_bytes += spec.sent_bytes_per_unit * units
        if not container.running:
            return
        cpu = spec.idle_cores * elapsed + spec.cpu_seconds_per_unit * units
        read, written = spec.read_bytes_per_unit * units, spec.written_bytes_per_unit * units
        container.cpu_seconds += cpu
        container.cpu_since_sync += cpu
        container.read_bytes += read
        container.written_bytes += written
        pod.cpu_seconds += cpu
        pod.read_bytes += read
        pod.written_bytes += written
        container.memory_bytes = (spec.memory_bytes + spec.memory_bytes_per_unit_rate * units / elapsed) * pod.memory_factor

    def _autoscale(self, now: float, work: Work) -> None:
        """Every :data:`HPA_SYNC_SECONDS`, as the HPA controller: the CPU each ready pod used since
        its last look against the target share of the CPU request (pods not ready count as idle
        when scaling up), or KEDA's backlog per replica; down only after the stabilisation window."""
        for deployment in self.deployments.values():
            scaler = deployment.autoscaler
            if scaler is None or now - scaler.last_sync < HPA_SYNC_SECONDS:
                continue
            spec, current = scaler.spec, len(deployment.pods)
            if spec.metric == "cpu":
                first = deployment.spec.containers[0]
                ready = [pod.containers[first.name] for pod in deployment.pods if pod.ready]
                used = sum(c.cpu_since_sync for c in ready) / (now - scaler.last_sync)
                used /= first.cpu_request_cores * spec.target
                ratio = used / len(ready) if ready else 0.0
                if ratio > 1:
                    ratio = used / current
                wanted = current if abs(ratio - 1) <= HPA_TOLERANCE else math.ceil(current * ratio)
            else:
                wanted = math.ceil(work.backlog / spec.target)
            for pod in deployment.pods:
                for container in pod.containers.values():
                    container.cpu_since_sync = 0.0
            scaler.last_sync = now
            scaler.desired = min(max(wanted, spec.min_replicas), spec.max_replicas)
            scaler.history.append((now, scaler.desired))
            while scaler.history[0][0] < now - STABILISATION_SECONDS:
                scaler.history.popleft()
            replicas = max(desired for _, desired in scaler.history)  # down only after the window
            while len(deployment.pods) < replicas:
                self._add_pod(deployment, now)
            del deployment.pods[replicas:]

    # -- naming --------------------------------------------------------------------------------

    def _name(self, length: int) -> str:
        return "".join(self._random.choice(_NAME_ALPHABET) for _ in range(length))

    def _container_id(self, pod: Pod, container: str, restarts: int) -> str:
        return hashlib.sha256(f"{self._seed}/{pod.uid}/{container}/{restarts}".encode()).hexdigest()

    def _add_pod(self, deployment: Deployment, now: float, age: float = 0.0) -> None:
        """A new pod of ``deployment``; ``age`` > 0: it has been running that long (some of its
        containers restarted once in that time)."""
        spec = deployment.spec
        node = spec.nodes[deployment.created_pods % len(spec.nodes)]
        deployment.created_pods += 1
        node_index = ALL_NODES.index(node)
        self._pod_ips[node] = self._pod_ips.get(node, 1) + 1
        pod = Pod(
            name=f"{spec.name}-{deployment.replicaset}-{self._name(5)}",
            uid=str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            deployment=spec.name, replicaset=f"{spec.name}-{deployment.replicaset}", node=node,
            host_ip=f"10.0.0.{11 + node_index}", pod_ip=f"10.244.{node_index}.{self._pod_ips[node]}",
            created=now - age, memory_factor=self._random.uniform(0.97, 1.03),
        )
        for container_spec in spec.containers:
            restarts = int(self._random.random() < 0.25) if age else 0
            container = Container(container_spec, self._container_id(pod, container_spec.name, restarts),
                                  pod.created, restarts)
            container.cpu_seconds = container_spec.idle_cores * age  # what it used since it started
            container.memory_bytes = container_spec.memory_bytes * pod.memory_factor
            pod.cpu_seconds += container.cpu_seconds
            pod.containers[container_spec.name] = container
        deployment.pods.append(pod)
