"""The RabbitMQ management API: cluster nodes, the paged queue listing, policies, exchanges and
bindings (the topology, on its own cadence), and the per-queue statistics where the Prometheus
plugin is off."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
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
    Reading,
    count,
    measure,
)
from medobs.core.runtime import CollectionError, Deadline, safe_url

#: The "node" of counters read from the management API (for :class:`~.counters.MonotonicCounters`).
MANAGEMENT = "management"
#: The largest page the management API serves.
MAX_PAGE_SIZE = 500
_TOPOLOGY_COLUMNS = "name,vhost,node,state,type,arguments"
_BINDING_KEYS = ("source", "vhost", "destination", "destination_type", "routing_key")
_BINDING_COLUMNS = ",".join(_BINDING_KEYS)
#: The queue arguments the topology reads.
DEAD_LETTER_ARGUMENTS = frozenset({"x-dead-letter-exchange", "x-dead-letter-routing-key"})
_LISTING_COLUMNS = "name,vhost,state,messages_ready,messages_unacknowledged"
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
    """Reads of the management API at ``base_url`` (``http://rabbitmq:15672``), the one origin
    trusted with the credentials."""

    def __init__(self, client: HttpClient, base_url: str, page_size: int = MAX_PAGE_SIZE):
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        client.trust(self.base_url)

    def describe(self) -> str:
        return f"RabbitMQ management API at {safe_url(self.base_url)}"

    def _get(self, path: str, deadline: Deadline, **query: Any) -> Any:
        url = f"{self.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
        return self.client.get_json(url, deadline)

    def _list(self, path: str, deadline: Deadline, keep: Callable[[dict], dict] | None = None, **query: Any) -> list[dict]:
        """A listing's objects, each reduced by ``keep`` as it is decoded (memory: what is kept)."""
        url = f"{self.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
        kept = []
        for item in self.client.get_items(url, deadline):
            if not isinstance(item, dict):
                raise _malformed(self.base_url, path, "expected a JSON list of objects")
            kept.append(parsed(path, self.base_url, lambda: keep(item)) if keep else item)
        return kept

    def _pages(self, deadline: Deadline, **query: Any) -> Iterator[list[dict]]:
        """The queue listing page by page (each dropped once read: memory stays one page)."""
        page, pages = 1, 1
        while page <= pages:
            answer = self._get("/api/queues", deadline, page=page, page_size=self.page_size, **query)
            if not isinstance(answer, dict) or not isinstance(answer.get("page_count"), int):
                raise _malformed(self.base_url, "/api/queues", "expected a page of queues")
            pages = answer["page_count"]
            yield _queue_items(answer.get("items"), self.base_url)
            page += 1

    def nodes(self, deadline: Deadline) -> list[Node]:
        return parsed("/api/nodes", self.base_url, lambda: [_node(item) for item in self._list("/api/nodes", deadline)])

    def queues(self, deadline: Deadline) -> list[dict]:
        """Every queue with its arguments, node and state, in one answer: stats off, unpaged (paging
        costs the broker a pass over every queue per page, quadratic in the number of queues)."""
        return self._list(
            "/api/queues", deadline, _topology_queue, disable_stats="true", enable_queue_totals="true",
            columns=_TOPOLOGY_COLUMNS,
        )

    def depths(self, deadline: Deadline) -> Reading:
        """Depths and states from the paged listing, stats off, totals on (where the plugin is off)."""
        reading = Reading(answered={MANAGEMENT})
        for items in self._pages(deadline, disable_stats="true", enable_queue_totals="true", columns=_LISTING_COLUMNS):
            for item in items:
                key = (item["vhost"], item["name"])
                ready, unacknowledged = count(item.get("messages_ready")), count(item.get("messages_unacknowledged"))
                if ready is None or unacknowledged is None:
                    reading.rejected.add(key)
                    continue
                state = item.get("state")
                reading.depths[key] = Depth(ready, unacknowledged, state=state if isinstance(state, str) else None)
        return reading

    def queue_statistics(self, deadline: Deadline) -> Reading:
        """Consumers, utilisation, head timestamps and counters of every queue (stats on: slow)."""
        reading = Reading(answered={MANAGEMENT})
        for items in self._pages(deadline, columns=_STATS_COLUMNS):
            parsed("/api/queues", self.base_url, lambda: add_statistics(reading, items))
        return reading

    def policies(self, deadline: Deadline) -> list[dict]:
        return self._list("/api/policies", deadline)

    def exchanges(self, deadline: Deadline) -> list[dict]:
        return self._list("/api/exchanges", deadline, None, disable_stats="true", columns="name,vhost,type")

    def bindings(self, deadline: Deadline) -> list[dict]:
        return self._list("/api/bindings", deadline, _binding, columns=_BINDING_COLUMNS)


def _malformed(base_url: str, path: str, what: str) -> CollectionError:
    return CollectionError("malformed", f"{safe_url(base_url)}{path}: {what}")


def _queue_items(items: Any, base_url: str) -> list[dict]:
    """``items`` if it is a list of queues, each an object with a string name and vhost."""
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("vhost"), str)
        for item in items
    ):
        raise _malformed(base_url, "/api/queues", "expected a list of queues, each with a name and a vhost")
    return items


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a name")
    return value


def _shared(value: Any) -> str:
    """A name that many objects carry (a vhost, a node, a state), held once."""
    return sys.intern(_name(value))


def _topology_queue(item: dict) -> dict:
    """What the topology needs of a queue: names, node, state, type and its dead-letter arguments."""
    arguments = item.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise TypeError("arguments is not an object")
    return {
        "name": _name(item["name"]), "vhost": _shared(item["vhost"]), "node": _shared(item.get("node", "")),
        "state": _shared(item.get("state", "running")), "type": _shared(item.get("type", "classic")),
        "arguments": {key: value for key, value in arguments.items() if key in DEAD_LETTER_ARGUMENTS},
    }


def _binding(item: dict) -> dict:
    binding = {key: _name(item.get(key, "")) for key in _BINDING_KEYS}
    binding["vhost"], binding["destination_type"] = _shared(binding["vhost"]), _shared(binding["destination_type"])
    return binding


def parsed(path: str, base_url: str, parse: Any) -> Any:
    """``parse()``, with a missing or mistyped field reported as a malformed answer."""
    try:
        return parse()
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise _malformed(base_url, path, f"unexpected answer ({type(error).__name__}: {str(error)[:80]})") from None


def _node(item: dict) -> Node:
    name = item["name"]
    if not isinstance(name, str):
        raise TypeError("a node name is not a string")
    host = name.split("@", 1)[-1]
    url = None
    for context in item.get("contexts") or []:
        protocol = str(context.get("protocol", ""))
        if "prometheus" in protocol or "Prometheus" in str(context.get("description", "")):
            scheme = "https" if "https" in protocol or context.get("ssl_opts") else "http"
            path = str(context.get("path") or "/").rstrip("/")
            url = f"{scheme}://{host}:{int(context['port'])}{path}"
    return Node(name, bool(item.get("running", True)), url)


def add_statistics(reading: Reading, items: list[dict]) -> None:
    """Details and counters from the statistics listing (:meth:`ManagementApi.queue_statistics`)."""
    for item in items:
        key = (item["vhost"], item["name"])
        consumers = count(item.get("consumers"))
        stats = item.get("message_stats") or {}
        counters = {counter: count(stats.get(field)) for field, counter in _STATS_COUNTERS.items()}
        if consumers is None or None in counters.values():
            reading.rejected.add(key)
            continue
        reading.details[key] = Detail(
            measure(item.get("consumer_utilisation")), measure(item.get("head_message_timestamp")), consumers
        )
        for (field, counter), total in zip(_STATS_COUNTERS.items(), counters.values()):
            reading.counters[((counter, *key), (MANAGEMENT, field))] = float(total)
