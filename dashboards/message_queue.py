"""Message Queue: RabbitMQ's work queues and dead-letter queues, from the medobs queue exporter.

The backlog panel shows ``medical_data`` as KEDA's rabbitmq scaler counts it
(``medobs_queue_keda_length``) with KEDA's threshold drawn on it: above it, KEDA adds
inference replicas.
"""

from __future__ import annotations

from typing import Any

from dashboards.panels import (
    COUNT,
    JOB_INSTANCE,
    MESSAGES_PER_SECOND,
    RATE_INTERVAL,
    SECONDS,
    Row,
    board,
    jobs_matcher,
    rate,
    target,
    timeseries,
)
from medobs.core.catalog import platform, queue

JOBS = ("rabbitmq",)
#: The queue KEDA's ScaledObject watches, and the length above which it scales inference out.
KEDA_QUEUE = "medical_data"
KEDA_THRESHOLD = 10
KEDA_QUEUE_MATCHER = f'queue="{KEDA_QUEUE}"'
WORK = 'role="work"'
DLQ = 'role="dlq"'


def _per_queue(expr: str, legend: str = "") -> Any:
    return target(f"sum by (queue) ({expr})", f"{{{{queue}}}} {legend}".strip())


def _backlog() -> Row:
    return Row("Backlog", [
        timeseries(
            "Backlog as KEDA sees it",
            f"Length of {KEDA_QUEUE} as KEDA's rabbitmq scaler counts it (ready messages). Above "
            f"{KEDA_THRESHOLD} (the red line) KEDA adds inference replicas.",
            COUNT,
            target(
                f"max by (queue) ({JOB_INSTANCE(queue.KEDA_LENGTH.name, KEDA_QUEUE_MATCHER)})",
                "{{queue}}",
            ),
            width=12, threshold=KEDA_THRESHOLD,
        ),
        timeseries(
            "Oldest message age", "Age of the message at the head of each work queue: how long the oldest study waits.",
            SECONDS, target(f"max by (queue) ({JOB_INSTANCE(queue.OLDEST_MESSAGE_AGE.name, WORK)})", "{{queue}}"),
            width=12,
        ),
    ])


def _queues() -> Row:
    return Row("Work queues", [
        timeseries(
            "Ready and unacked", "Messages waiting for delivery, and delivered but not yet acknowledged, per queue.",
            COUNT,
            _per_queue(JOB_INSTANCE(queue.MESSAGES_READY.name, WORK), "ready"),
            _per_queue(JOB_INSTANCE(queue.MESSAGES_UNACKED.name, WORK), "unacked"),
            width=12,
        ),
        timeseries(
            "Consumers", "Consumers attached to each work queue.",
            COUNT, _per_queue(JOB_INSTANCE(queue.CONSUMERS.name, WORK)), width=12,
        ),
        timeseries(
            "Publish rate", "Messages published into each work queue per second.",
            MESSAGES_PER_SECOND, _per_queue(rate(JOB_INSTANCE(queue.PUBLISHED.name, WORK))), width=12,
        ),
        timeseries(
            "Consume rate", "Messages delivered to consumers and acknowledged by them per second.",
            MESSAGES_PER_SECOND,
            _per_queue(rate(JOB_INSTANCE(queue.DELIVERED.name, WORK)), "delivered"),
            _per_queue(rate(JOB_INSTANCE(queue.ACKNOWLEDGED.name, WORK)), "acknowledged"),
            width=12,
        ),
    ])


def _dead_letters() -> Row:
    dlq_size = JOB_INSTANCE(queue.MESSAGES.name, DLQ)
    return Row("Dead-letter queues", [
        timeseries(
            "DLQ size", "Messages in each dead-letter queue: studies that failed and wait for someone.",
            COUNT, _per_queue(dlq_size),
        ),
        timeseries(
            "DLQ growth", "How fast each dead-letter queue grows (messages per second, negative when drained).",
            MESSAGES_PER_SECOND, _per_queue(f"deriv({dlq_size}[{RATE_INTERVAL}])"), minimum=None,
        ),
        timeseries(
            "Dead-lettered by reason", "Messages dead-lettered per second, broker-wide, by reason "
            "(rejected, expired, maxlen, delivery_limit).",
            MESSAGES_PER_SECOND,
            target(f"sum by (reason) ({rate(JOB_INSTANCE(queue.DEAD_LETTERED.name))})", "{{reason}}"),
        ),
    ])


def dashboard() -> dict[str, Any]:
    return board(
        "message-queue",
        "Message Queue",
        "RabbitMQ work queues and dead-letter queues, and the backlog KEDA scales inference on.",
        tags=["rabbitmq"],
        variables=JOB_INSTANCE.variables(platform.UP.name, jobs_matcher(*JOBS)),
        rows=[_backlog(), _queues(), _dead_letters()],
    )
