"""The RabbitMQ management API: cluster nodes, the paged queue listing, policies, exchanges and
bindings (the topology, on its own cadence), and the per-queue statistics where the Prometheus
plugin is off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from exporters.queue.client import HttpClient
from exporters.queue.model import (
    ACKNOWLEDGED,
    DELIVERED,
    PUBLISHED,
    REDELIVERED,
    Depth,
    Detail,
    QueueKey,
    Reading,
)
from medobs.core.runtime import CollectionError, Deadline, safe_url

#: The "node" of counters read from the management API (for :class:`~.counters.MonotonicCounters`).
MANAGEMENT = "management"
#: The largest page the management API serves.
MAX_PAGE_SIZE = 500
_LISTING_COLUMNS = "name,vhost,node,state,type,arguments,messages_ready,messages_unacknowledged"
_STATS_COUNTERS = {"publish": PUBLISHED, "deliver_get": DELIVERED, "ack": ACKNOWLEDGED, "redeliver": REDELIVERED}
_STATS_COLUMNS = "name,vhost,consumers,consumer_utilisation,head_message_timestamp," + ",".join(
    f"message_stats.{name}" for name in _STATS_COUNTERS
)


@dataclass(frozen=True)
class Node:
    """A cluster node and where its Prometheus plugin listens (None when it has none)."""

    name: str
    running: bool
    prometheus_url: str | None


class ManagementApi:
    """Reads of the management API at ``base_url`` (``http://rabbitmq:15672``)."""

    def __init__(self, client: HttpClient, base_url: str, page_size: int = MAX_PAGE_SIZE):
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size

    def describe(self) -> str:
        return f"RabbitMQ management API at {safe_url(self.base_url)}"

    def _get(self, path: str, deadline: Deadline, **query: Any) -> Any:
        url = f"{self.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
        return self.client.get_json(url, deadline)

    def _list(self, path: str, deadline: Deadline, **query: Any) -> list[dict]:
        answer = self._get(path, deadline, **query)
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise CollectionError("malformed", f"{safe_url(self.base_url)}{path}: expected a JSON list of objects")
        return answer

    def _pages(self, deadline: Deadline, **query: Any) -> Iterator[dict]:
        page, pages = 1, 1
        while page <= pages:
            answer = self._get("/api/queues", deadline, page=page, page_size=self.page_size, **query)
            if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
                raise CollectionError("malformed", f"{safe_url(self.base_url)}/api/queues: expected a page of queues")
            pages = answer.get("page_count") or 0
            yield from answer["items"]
            page += 1

    def nodes(self, deadline: Deadline) -> list[Node]:
        return _parsed("/api/nodes", self.base_url, lambda: [_node(item) for item in self._list("/api/nodes", deadline)])

    def queues(self, deadline: Deadline) -> list[dict]:
        """Every queue with its arguments, node, state and depth: stats off, totals on (cheap)."""
        return list(
            self._pages(deadline, disable_stats="true", enable_queue_totals="true", columns=_LISTING_COLUMNS)
        )

    def queue_statistics(self, deadline: Deadline) -> Reading:
        """Consumers, utilisation, head timestamps and counters of every queue (stats on: slow)."""
        items = list(self._pages(deadline, columns=_STATS_COLUMNS))
        return _parsed("/api/queues", self.base_url, lambda: statistics_reading(items))

    def policies(self, deadline: Deadline) -> list[dict]:
        return self._list("/api/policies", deadline)

    def exchanges(self, deadline: Deadline) -> list[dict]:
        return self._list("/api/exchanges", deadline, disable_stats="true", columns="name,vhost,type")

    def bindings(self, deadline: Deadline) -> list[dict]:
        return self._list("/api/bindings", deadline)


def _parsed(path: str, base_url: str, parse: Any) -> Any:
    """``parse()``, with a missing or mistyped field reported as a malformed answer."""
    try:
        return parse()
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CollectionError("malformed", f"{safe_url(base_url)}{path}: unexpected answer ({error!r})") from None


def _node(item: dict) -> Node:
    name = item["name"]
    host = name.split("@", 1)[-1]
    url = None
    for context in item.get("contexts") or []:
        protocol = str(context.get("protocol", ""))
        if "prometheus" in protocol or "Prometheus" in str(context.get("description", "")):
            scheme = "https" if "https" in protocol or context.get("ssl_opts") else "http"
            path = str(context.get("path") or "/").rstrip("/")
            url = f"{scheme}://{host}:{int(context['port'])}{path}"
    return Node(name, bool(item.get("running", True)), url)


def listing_depths(items: list[dict]) -> dict[QueueKey, Depth]:
    """Depths and states from the cheap listing (:meth:`ManagementApi.queues`)."""
    return {
        (item["vhost"], item["name"]): Depth(
            int(item.get("messages_ready") or 0), int(item.get("messages_unacknowledged") or 0), state=item.get("state")
        )
        for item in items
    }


def statistics_reading(items: list[dict]) -> Reading:
    """Details and counters from the statistics listing (:meth:`ManagementApi.queue_statistics`)."""
    reading = Reading(answered={MANAGEMENT})
    for item in items:
        key = (item["vhost"], item["name"])
        utilisation = item.get("consumer_utilisation")
        timestamp = item.get("head_message_timestamp")
        reading.details[key] = Detail(
            float(utilisation) if isinstance(utilisation, (int, float)) else None,
            float(timestamp) if isinstance(timestamp, (int, float)) else None,
            int(item.get("consumers") or 0),
        )
        stats = item.get("message_stats") or {}
        for field, counter in _STATS_COUNTERS.items():
            reading.counters[((counter, *key), (MANAGEMENT, field))] = float(stats.get(field) or 0)
    return reading
