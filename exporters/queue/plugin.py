"""The broker's Prometheus plugin (rabbitmq_prometheus, port 15692), which is node-local: every node
is read. Each scrape reads depths, consumers and the per-channel counters; the details cadence
reads consumer utilisation and head message timestamps (the expensive ``queue_metrics`` family) and
the global dead-letter counters (RabbitMQ 3.10+)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from exporters.queue.client import HttpClient
from exporters.queue.model import (
    ACKNOWLEDGED,
    DELIVERED,
    PUBLISHED,
    REDELIVERED,
    Depth,
    Detail,
    Reading,
)
from medobs.core.runtime import CollectionError, Deadline, safe_url

DEPTH_PATH = (
    "/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count"
    "&family=channel_queue_metrics&family=channel_queue_exchange_metrics"
)
DETAIL_PATH = "/metrics/detailed?family=queue_metrics"
GLOBAL_PATH = "/metrics"

_D = "rabbitmq_detailed_"
READY, UNACKED, CONSUMERS = _D + "queue_messages_ready", _D + "queue_messages_unacked", _D + "queue_consumers"
UTILISATION, HEAD_TIMESTAMP = _D + "queue_consumer_utilisation", _D + "queue_head_message_timestamp"
QUEUE_PUBLISHED = _D + "queue_messages_published_total"
#: Per channel and queue; delivered counts basic.deliver and basic.get, with and without acks.
CHANNEL_COUNTERS = {
    _D + "channel_messages_delivered_ack_total": DELIVERED,
    _D + "channel_messages_delivered_total": DELIVERED,
    _D + "channel_get_ack_total": DELIVERED,
    _D + "channel_get_total": DELIVERED,
    _D + "channel_messages_acked_total": ACKNOWLEDGED,
    _D + "channel_messages_redelivered_total": REDELIVERED,
}
#: Why messages were dead-lettered, by family (``confirmed`` counts at-least-once deliveries, not a reason).
DEAD_LETTER_REASONS = {
    f"rabbitmq_global_messages_dead_lettered_{reason}_total": reason
    for reason in ("rejected", "expired", "maxlen", "delivery_limit")
}
DEAD_LETTERED = "dead_lettered"

_DEPTH_NAMES = frozenset({READY, UNACKED, CONSUMERS, QUEUE_PUBLISHED, *CHANNEL_COUNTERS})
_DETAIL_NAMES = frozenset({UTILISATION, HEAD_TIMESTAMP})
_LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")


def parse(text: str, wanted: frozenset[str], where: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """``(name, labels, value)`` for the samples of ``wanted`` families in a text exposition.

    Fast and lean on purpose (a 2,000-queue broker sends tens of thousands of lines): one regular
    expression finds the wanted lines without splitting the rest, and each distinct label block
    is parsed once.
    """
    blocks: dict[str, dict[str, str]] = {}
    for match in _line_pattern(wanted).finditer(text):
        name, rest = match.groups()
        block, value = "", rest
        if rest.startswith("{"):
            block, closed, value = rest[1:].rpartition("} ")
            if not closed:
                value = ""  # a line cut inside its labels
        labels = blocks.get(block)
        if labels is None:
            labels = blocks[block] = {k: _UNESCAPE.sub(_unescape, v) for k, v in _LABEL.findall(block)}
        try:
            yield name, labels, float(value)
        except ValueError:
            raise CollectionError("malformed", f"{where}: unreadable sample line {match.group()[:120]!r}") from None


@functools.lru_cache(maxsize=8)
def _line_pattern(wanted: frozenset[str]) -> re.Pattern[str]:
    """Sample lines of the ``wanted`` families: the name, and the rest (label block and value)."""
    names = "|".join(re.escape(name) for name in sorted(wanted))
    return re.compile(rf"^({names})([{{ ].*)$", re.MULTILINE)


def _unescape(match: re.Match[str]) -> str:
    return "\n" if match.group(1) == "n" else match.group(1)


class PrometheusPlugin:
    """Reads one node's plugin at ``base_url`` (``http://rabbit-0:15692``)."""

    def __init__(self, client: HttpClient):
        self.client = client

    def _text(self, url: str, deadline: Deadline) -> str:
        text = self.client.get_text(url, deadline)
        if text and not text.lstrip().startswith(("#", "rabbitmq_")):
            raise CollectionError("malformed", f"{safe_url(url)}: not a Prometheus exposition")
        return text

    def read_depths(self, node: str, base_url: str, deadline: Deadline) -> Reading:
        """Depths, consumers and raw per-channel counters of the queues on ``node``."""
        url = base_url + DEPTH_PATH
        reading = Reading(answered={node})
        depths = reading.depths
        counters = reading.counters
        for name, labels, value in parse(self._text(url, deadline), _DEPTH_NAMES, safe_url(url)):
            if name == QUEUE_PUBLISHED:
                series = (PUBLISHED, labels.get("queue_vhost", ""), labels.get("queue", ""))
                source = (node, f"{labels.get('channel')} {labels.get('exchange_vhost')} {labels.get('exchange')}")
                counters[(series, source)] = value
                continue
            key = (labels.get("vhost", ""), labels.get("queue", ""))
            if name in CHANNEL_COUNTERS:
                counters[((CHANNEL_COUNTERS[name], *key), (node, f"{labels.get('channel')} {name}"))] = value
                continue
            depth = depths.get(key)
            if depth is None:
                depth = depths[key] = Depth(0, 0)
            if name == READY:
                depth.ready = int(value)
            elif name == UNACKED:
                depth.unacknowledged = int(value)
            else:
                depth.consumers = int(value)
        return reading

    def read_details(self, node: str, base_url: str, deadline: Deadline) -> Reading:
        """Consumer utilisation and head timestamps of the queues on ``node``, and its dead-letter counters."""
        url = base_url + DETAIL_PATH
        reading = Reading(answered={node})
        for name, labels, value in parse(self._text(url, deadline), _DETAIL_NAMES, safe_url(url)):
            detail = reading.details.setdefault((labels.get("vhost", ""), labels.get("queue", "")), Detail())
            if name == UTILISATION:
                detail.consumer_utilisation = value
            else:
                detail.head_message_timestamp = value
        url = base_url + GLOBAL_PATH
        for name, labels, value in parse(self._text(url, deadline), frozenset(DEAD_LETTER_REASONS), safe_url(url)):
            reason = DEAD_LETTER_REASONS[name]
            series = (DEAD_LETTERED, labels.get("queue_type", ""), reason, labels.get("dead_letter_strategy", ""))
            reading.counters[(series, (node, ""))] = value
        return reading
