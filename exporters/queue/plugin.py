"""The broker's Prometheus plugin (rabbitmq_prometheus, port 15692), which is node-local: every node
is read. Each scrape reads depths, consumers and the per-channel counters; the details cadence
reads consumer utilisation and head message timestamps (the expensive ``queue_metrics`` family) and
the global dead-letter counters (RabbitMQ 3.10+)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from exporters.queue.client import HttpClient
from exporters.queue.model import (
    ACKNOWLEDGED,
    DELIVERED,
    PUBLISHED,
    REDELIVERED,
    Depth,
    Detail,
    MAX_COUNT,
    Reading,
    count,
    measure,
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
    """Reads the nodes' plugins (``http://rabbit-0:15692``), streamed: a block of the answer at a time.

    The credentials go to a node's listener only with ``send_credentials`` (``--plugin-credentials``),
    and never over plain HTTP when the management API is reached over HTTPS.
    """

    def __init__(self, client: HttpClient, send_credentials: bool = False, management_url: str = ""):
        self.client = client
        self.send_credentials = send_credentials
        self.https_only = urlsplit(management_url).scheme == "https"

    def _samples(self, url: str, wanted: frozenset[str], deadline: Deadline) -> Iterator[tuple[str, dict[str, str], float]]:
        if self.send_credentials and (url.startswith("https:") or not self.https_only):
            self.client.trust(url)
        where = safe_url(url)
        for number, block in enumerate(self.client.text_blocks(url, deadline)):
            if number == 0 and block and not block.lstrip().startswith(("#", "rabbitmq_")):
                raise CollectionError("malformed", f"{where}: not a Prometheus exposition")
            yield from parse(block, wanted, where)

    def read_depths(self, node: str, base_url: str, deadline: Deadline) -> Reading:
        """Depths, consumers and raw per-channel counters of the queues on ``node``."""
        reading = Reading(answered={node})
        depths, counters, rejected = reading.depths, reading.counters, reading.rejected
        for name, labels, value in self._samples(base_url + DEPTH_PATH, _DEPTH_NAMES, deadline):
            number = int(value) if 0.0 <= value <= MAX_COUNT and value.is_integer() else None  # count(), for floats
            if name == QUEUE_PUBLISHED:
                series = (PUBLISHED, labels.get("queue_vhost", ""), labels.get("queue", ""))
                source = (node, f"{labels.get('channel')} {labels.get('exchange_vhost')} {labels.get('exchange')}")
                if number is None:
                    rejected.add(series[1:])
                else:
                    counters[(series, source)] = float(number)
                continue
            key = (labels.get("vhost", ""), labels.get("queue", ""))
            if number is None:
                rejected.add(key)
            elif name in CHANNEL_COUNTERS:
                counters[((CHANNEL_COUNTERS[name], *key), (node, f"{labels.get('channel')} {name}"))] = float(number)
            else:
                depth = depths.get(key)
                if depth is None:
                    depth = depths[key] = Depth(0, 0)
                if name == READY:
                    depth.ready = number
                elif name == UNACKED:
                    depth.unacknowledged = number
                else:
                    depth.consumers = number
        for key in rejected:
            depths.pop(key, None)
        if rejected:
            reading.counters = {raw: v for raw, v in counters.items() if raw[0][1:] not in rejected}
        return reading

    def read_details(self, node: str, base_url: str, deadline: Deadline) -> Reading:
        """Consumer utilisation and head timestamps of the queues on ``node``, and its dead-letter counters."""
        reading = Reading(answered={node})
        for name, labels, value in self._samples(base_url + DETAIL_PATH, _DETAIL_NAMES, deadline):
            detail = reading.details.setdefault((labels.get("vhost", ""), labels.get("queue", "")), Detail())
            if name == UTILISATION:
                detail.consumer_utilisation = measure(value)
            else:
                detail.head_message_timestamp = measure(value)
        for name, labels, value in self._samples(base_url + GLOBAL_PATH, frozenset(DEAD_LETTER_REASONS), deadline):
            number = count(value)
            if number is not None:
                series = (DEAD_LETTERED, labels.get("queue_type", ""), DEAD_LETTER_REASONS[name], labels.get("dead_letter_strategy", ""))
                reading.counters[(series, (node, ""))] = float(number)
        return reading
