"""Every alert threshold and ``for`` duration, in one place.

The domain modules read these values and nothing else, so a site tunes its alerting here (or
passes its own :class:`Thresholds` to :func:`alerts.build.rule_files`)::

    from dataclasses import replace
    from alerts import thresholds
    from alerts.build import rule_files

    faster = replace(thresholds.DEFAULT, queue=replace(thresholds.DEFAULT.queue, backlog_for="2m"))
    files = rule_files(faster)

Ratios are 0..1, durations are Prometheus durations, sizes are bytes. Each ``*_for`` is how
long a condition must hold before the alert fires: long enough to ride out a rollout, a pod
restart or one bad scrape, short enough that an outage is not hidden.

:func:`shortened` gives the same thresholds with shorter durations, for end-to-end runs on the
local stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from medobs.core.durations import seconds

#: How long a condition must hold before its alert fires (a Prometheus duration: ``5m``).
For = str
#: The range a rule looks back over: a range vector's ``[5m]``, or how long a state is remembered.
Window = str


@dataclass(frozen=True)
class Gateway:
    #: The HPA's minReplicas in the seed: fewer ready replicas means lost redundancy.
    min_ready_replicas: int = 3
    replicas_for: For = "5m"
    #: Share of requests answered 401 ...
    auth_failure_ratio: float = 0.10
    #: ... and at least this many 401 per second, so that a quiet night's few bad tokens stay silent.
    auth_failure_min_rate: float = 0.5
    auth_failure_window: Window = "5m"
    auth_failure_for: For = "10m"
    down_for: For = "2m"


@dataclass(frozen=True)
class Inference:
    model_unavailable_for: For = "2m"
    down_for: For = "2m"
    #: Share of failed synthetic probes over the window.
    probe_failure_ratio: float = 0.5
    probe_window: Window = "5m"
    probe_for: For = "5m"
    #: p95 time requests wait in TF Serving's batching queue.
    queueing_p95_seconds: float = 0.5
    queueing_window: Window = "5m"
    queueing_for: For = "10m"


@dataclass(frozen=True)
class Gpu:
    #: T4s throttle from about 85-90 °C; sustained heat above this shortens their life.
    temperature_celsius: float = 85
    temperature_for: For = "5m"
    #: XID codes that mean the GPU or its memory needs attention (NVIDIA's XID catalog).
    critical_xids: tuple[int, ...] = (48, 63, 64, 74, 79, 94, 95)
    #: How long an XID keeps its alert firing after it was last seen.
    xid_window: Window = "15m"
    ecc_window: Window = "10m"
    #: Clock event reasons (the GPU exporter's ``reason`` label) that mean hardware or thermal slowdown.
    slowdown_reasons: tuple[str, ...] = (
        "hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown",
    )
    slowdown_for: For = "5m"
    #: Framebuffer used / total. TF Serving grabs nearly all GPU memory unless it runs with
    #: --per_process_gpu_memory_fraction; see alerts/runbooks/GpuMemoryNearlyFull.md.
    memory_used_ratio: float = 0.95
    memory_for: For = "15m"


@dataclass(frozen=True)
class Queue:
    #: The queue KEDA scales ml-inference on, and its queueLength trigger.
    keda_queue: str = "medical_data"
    keda_threshold: int = 10
    backlog_trend_window: Window = "10m"
    backlog_for: For = "10m"
    oldest_message_seconds: float = 300
    oldest_message_for: For = "5m"
    dlq_window: Window = "10m"
    no_consumers_for: For = "5m"
    unacked_window: Window = "5m"
    unacked_for: For = "5m"


@dataclass(frozen=True)
class Database:
    replication_lag_seconds: float = 60
    replication_lag_for: For = "5m"
    #: Replicas the primary should see streaming (the seed runs one).
    expected_replicas: int = 1
    replica_for: For = "5m"
    connections_ratio: float = 0.8
    connections_for: For = "5m"
    hikari_pending: int = 0
    hikari_for: For = "5m"
    #: At least this many deadlocks in the window.
    deadlocks: int = 2
    deadlocks_window: Window = "10m"
    #: age(datfrozenxid) as a share of the 2^31 transactions that wrap around.
    xid_age_ratio: float = 0.5
    xid_for: For = "15m"
    down_for: For = "1m"
    #: How far back a server counts as a known replica when its exporter can no longer ask it.
    replica_memory: Window = "1h"


@dataclass(frozen=True)
class Redis:
    down_for: For = "1m"
    persistence_for: For = "2m"
    memory_ratio: float = 0.9
    memory_for: For = "5m"
    evictions_window: Window = "5m"
    evictions_for: For = "10m"


@dataclass(frozen=True)
class Platform:
    target_down_for: For = "5m"
    job_missing_for: For = "15m"
    exporter_down_for: For = "5m"
    #: At least this many restarts of one container in the window (a crash loop reaches it in
    #: about a minute; its 5-minute back-off keeps it there).
    restarts: int = 3
    restarts_window: Window = "30m"
    hpa_for: For = "15m"
    certificate_days: float = 14
    certificate_for: For = "15m"
    #: The platform's RPO for the daily pg_dump: a day and two hours of slack.
    backup_max_age_hours: float = 26
    backup_for: For = "5m"
    #: Long enough for the backup script's own retry to succeed first.
    backup_failed_for: For = "15m"
    backup_missing_for: For = "1h"


@dataclass(frozen=True)
class Thresholds:
    gateway: Gateway = field(default_factory=Gateway)
    inference: Inference = field(default_factory=Inference)
    gpu: Gpu = field(default_factory=Gpu)
    queue: Queue = field(default_factory=Queue)
    database: Database = field(default_factory=Database)
    redis: Redis = field(default_factory=Redis)
    platform: Platform = field(default_factory=Platform)


DEFAULT = Thresholds()


def shortened(thresholds: Thresholds, divisor: int, longest: str) -> Thresholds:
    """``thresholds`` with every ``for`` divided by ``divisor``, and every ``for`` and window
    at most ``longest``; nothing else changes (ratios, counts, sizes, ages stay as they are).

    The same rules, faster, for end-to-end runs on the local stack: ``shortened(DEFAULT, 20,
    "1m")`` fires QueueBacklogNotDraining after 30 s instead of 10 minutes. Windows are capped
    rather than divided, so that a rate still spans several scrapes and several probes.
    """
    cap = seconds(longest)

    def short(value: str, kind: str) -> str:
        length = seconds(value) // divisor if kind == "For" else seconds(value)
        return value if seconds(value) == 0 else f"{max(1, min(cap, length))}s"

    def domain(values: Any) -> Any:
        # With postponed annotations a field's type is its annotation's text: "For", "Window".
        durations = {f.name: short(getattr(values, f.name), f.type) for f in fields(values) if f.type in ("For", "Window")}
        return replace(values, **durations)

    return replace(thresholds, **{f.name: domain(getattr(thresholds, f.name)) for f in fields(thresholds)})
