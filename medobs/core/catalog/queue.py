"""The package's RabbitMQ queue and dead-letter-queue exporter (``medobs exporter queue``)."""

from medobs.core.catalog import exporter_health, metric

SOURCE = "medobs-queue"
#: ``role`` is ``work`` or ``dlq`` (from the dead-letter topology, or a name pattern as fallback).
_QUEUE = ("vhost", "queue", "role")

UP, SCRAPE_DURATION, SCRAPE_ERRORS, LAST_SUCCESS = exporter_health("medobs_queue", SOURCE, "RabbitMQ")

MESSAGES_READY = metric(
    "medobs_queue_messages_ready", "gauge", "Messages ready for delivery.",
    source=SOURCE, labels=_QUEUE, unit="messages",
)
MESSAGES_UNACKED = metric(
    "medobs_queue_messages_unacknowledged", "gauge", "Messages delivered but not yet acknowledged.",
    source=SOURCE, labels=_QUEUE, unit="messages",
)
MESSAGES = metric(
    "medobs_queue_messages", "gauge", "Messages in the queue (ready + unacknowledged).",
    source=SOURCE, labels=_QUEUE, unit="messages",
)
KEDA_LENGTH = metric(
    "medobs_queue_keda_length", "gauge",
    "Queue length as KEDA's rabbitmq scaler counts it (ready only over AMQP, the seed's mode).",
    source=SOURCE, labels=_QUEUE, unit="messages",
)
CONSUMERS = metric(
    "medobs_queue_consumers", "gauge", "Consumers attached to the queue.",
    source=SOURCE, labels=_QUEUE,
)
CONSUMER_UTILISATION = metric(
    "medobs_queue_consumer_utilisation_ratio", "gauge",
    "Share of time the queue could deliver to its consumers immediately (0..1).",
    source=SOURCE, labels=_QUEUE, unit="ratio",
)
PUBLISHED = metric(
    "medobs_queue_published_messages_total", "counter", "Messages published into the queue.",
    source=SOURCE, labels=_QUEUE,
)
DELIVERED = metric(
    "medobs_queue_delivered_messages_total", "counter", "Messages delivered to consumers.",
    source=SOURCE, labels=_QUEUE,
)
ACKNOWLEDGED = metric(
    "medobs_queue_acknowledged_messages_total", "counter", "Messages acknowledged by consumers.",
    source=SOURCE, labels=_QUEUE,
)
REDELIVERED = metric(
    "medobs_queue_redelivered_messages_total", "counter", "Messages delivered again after a requeue.",
    source=SOURCE, labels=_QUEUE,
)
STATE = metric(
    "medobs_queue_state", "gauge", "1 for the queue's current state (running, idle, flow, down ...).",
    source=SOURCE, labels=("vhost", "queue", "state"),
)
OLDEST_MESSAGE_AGE = metric(
    "medobs_queue_oldest_message_age_seconds", "gauge",
    "Age of the head message, from its AMQP timestamp property.",
    source=SOURCE, labels=_QUEUE, unit="seconds",
)
DEAD_LETTER_INFO = metric(
    "medobs_queue_dead_letter_info", "gauge",
    "1 for each work queue and each dead-letter queue its dead letters reach (\"\" when none: they are dropped).",
    source=SOURCE, labels=("vhost", "queue", "dead_letter_exchange", "dead_letter_queue", "resolved_by"),
)
TOPOLOGY_AGE = metric(
    "medobs_queue_topology_age_seconds", "gauge",
    "Age of the cached queue topology (arguments, policies, bindings).",
    source=SOURCE, unit="seconds",
)
DEAD_LETTERED = metric(
    "medobs_queue_dead_lettered_messages_total", "counter",
    "Messages dead-lettered, broker-wide, by reason (RabbitMQ 3.10+).",
    source=SOURCE, labels=("queue_type", "reason", "dead_letter_strategy"),
)
QUEUES_DROPPED = metric(
    "medobs_queue_series_dropped", "gauge",
    "Queues folded into the queue=\"__other__\" aggregate by the cardinality cap.",
    source=SOURCE,
)
DETAILS_AGE = metric(
    "medobs_queue_details_age_seconds", "gauge",
    "Age of the cached queue details (consumer utilisation, head message timestamp, dead-letter counters).",
    source=SOURCE, unit="seconds",
)
NODE_UP = metric(
    "medobs_queue_node_up", "gauge",
    "1 if the node's Prometheus plugin answered the last collection, else 0 (its queues are missing then).",
    source=SOURCE, labels=("node",),
)
READ_ERRORS = metric(
    "medobs_queue_read_errors_total", "counter",
    "Failed reads that did not fail the whole collection (one node, a background topology or details "
    "refresh, queues left out for impossible numbers), by source and kind.",
    source=SOURCE, labels=("source", "kind"),
)
