"""RabbitMQ queue alerts, from the package's queue exporter: a backlog KEDA does not drain, old
messages, dead-lettered messages, no consumers, unacknowledged messages that never complete."""

from __future__ import annotations

from alerts.model import Alert, job, promql, sel
from alerts.thresholds import Thresholds
from medobs.core.catalog import queue

SERVICE = "rabbitmq"
JOB = job("rabbitmq")
#: How descriptions name one queue.
WHICH = "queue {{ $labels.queue }} (vhost {{ $labels.vhost }})"


def alerts(t: Thresholds) -> list[Alert]:
    q = t.queue
    keda_length = sel(queue.KEDA_LENGTH, job=JOB, queue=q.keda_queue)
    unacked = sel(queue.MESSAGES_UNACKED, job=JOB, role="work")
    acked = sel(queue.ACKNOWLEDGED, job=JOB, role="work")
    return [
        Alert(
            name="QueueBacklogNotDraining",
            expr=promql(f"""
                {keda_length} > {q.keda_threshold}
                and
                deriv({keda_length}[{q.backlog_trend_window}]) >= 0
            """),
            for_=q.backlog_for,
            severity="warning",
            service=SERVICE,
            dashboard="message-queue",
            summary="The work queue's backlog stays above the KEDA threshold and does not shrink.",
            description=(
                "Work @which has held {{ $value }} ready messages (KEDA scales ml-inference above "
                "@threshold) without shrinking for @for: the consumers cannot keep up, KEDA "
                "is at its maximum, or the consumers are stuck."
            ),
            values={"which": WHICH, "threshold": q.keda_threshold},
        ),
        Alert(
            name="QueueOldestMessageTooOld",
            expr=f"{sel(queue.OLDEST_MESSAGE_AGE, job=JOB, role='work')} > {q.oldest_message_seconds:g}",
            for_=q.oldest_message_for,
            severity="warning",
            service=SERVICE,
            dashboard="message-queue",
            summary="The oldest message in a work queue has waited too long.",
            description=(
                "The message at the head of @which has waited {{ $value | humanizeDuration }} "
                "(more than @threshold s) for @for: images are not being processed in time."
            ),
            values={"which": WHICH, "threshold": f"{q.oldest_message_seconds:g}"},
        ),
        Alert(
            name="DeadLetterQueueReceivingMessages",
            expr=f"delta({sel(queue.MESSAGES, job=JOB, role='dlq')}[{q.dlq_window}]) > 0",
            severity="warning",
            service=SERVICE,
            dashboard="message-queue",
            summary="Messages are being dead-lettered.",
            description=(
                "Dead-letter @which received about {{ $value | humanize }} messages in the last "
                "@window: consumers rejected them or they expired, and the images they carry "
                "were not processed."
            ),
            values={"which": WHICH, "window": q.dlq_window},
        ),
        Alert(
            name="QueueNoConsumers",
            expr=f"{sel(queue.CONSUMERS, job=JOB, queue=q.keda_queue)} == 0",
            for_=q.no_consumers_for,
            severity="critical",
            service=SERVICE,
            dashboard="message-queue",
            summary="Nothing consumes the work queue: no image is being processed.",
            description=(
                "Work @which has had no consumer for @for (KEDA keeps at least one ml-inference "
                "replica): messages pile up and no image is processed."
            ),
            values={"which": WHICH},
        ),
        Alert(
            name="QueueUnackedMessagesStuck",
            expr=promql(f"""
                {unacked} > 0
                unless
                increase({acked}[{q.unacked_window}]) > 0
            """),
            for_=q.unacked_for,
            severity="warning",
            service=SERVICE,
            dashboard="message-queue",
            summary="Consumers hold messages without acknowledging any.",
            description=(
                "Work @which has had {{ $value }} messages delivered but unacknowledged, and no "
                "acknowledgement in the last @window, for @for: a consumer is stalled while "
                "holding them."
            ),
            values={"which": WHICH, "window": q.unacked_window},
        ),
    ]
