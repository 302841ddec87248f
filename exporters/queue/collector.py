"""The queue exporter: per-queue depths, counters and ages, with the dead-letter topology.

Each scrape reads depths, consumers and counters from the broker's Prometheus plugin on every
node (or, where the plugin is off, the management API's paged listing with stats off); the
topology (nodes, queue arguments and states, policies, exchanges, bindings) and the expensive
details (consumer utilisation, head message timestamps, dead-letter counters) are refreshed in
the background on their own cadences, with their ages exported. A sample::

    medobs_queue_messages_ready{vhost="/",queue="medical_data",role="work"} 42
    medobs_queue_messages_ready{vhost="/",queue="medical_data.dlq",role="dlq"} 3
    medobs_queue_messages_unacknowledged{vhost="/",queue="medical_data",role="work"} 4
    medobs_queue_messages{vhost="/",queue="medical_data",role="work"} 46
    medobs_queue_keda_length{vhost="/",queue="medical_data",role="work"} 42
    medobs_queue_consumers{vhost="/",queue="medical_data",role="work"} 2
    medobs_queue_consumer_utilisation_ratio{vhost="/",queue="medical_data",role="work"} 0.93
    medobs_queue_published_messages_total{vhost="/",queue="medical_data",role="work"} 18234.0
    medobs_queue_delivered_messages_total{vhost="/",queue="medical_data",role="work"} 18188.0
    medobs_queue_acknowledged_messages_total{vhost="/",queue="medical_data",role="work"} 18142.0
    medobs_queue_redelivered_messages_total{vhost="/",queue="medical_data",role="work"} 12.0
    medobs_queue_oldest_message_age_seconds{vhost="/",queue="medical_data",role="work"} 7.5
    medobs_queue_state{vhost="/",queue="medical_data",state="running"} 1
    medobs_queue_dead_letter_info{dead_letter_exchange="dlx",dead_letter_queue="medical_data.dlq",queue="medical_data",resolved_by="policy",vhost="/"} 1.0
    medobs_queue_dead_lettered_messages_total{dead_letter_strategy="at_most_once",queue_type="rabbit_classic_queue",reason="rejected"} 3.0
    medobs_queue_series_dropped 0.0
    medobs_queue_node_up{node="rabbit@rabbitmq-0"} 1.0
    medobs_queue_topology_age_seconds 12.1
    medobs_queue_details_age_seconds 4.0
    medobs_queue_read_errors_total{source="topology",kind="timeout"} 1.0
    medobs_queue_up 1.0
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric

from exporters.queue import memory
from exporters.queue.counters import MonotonicCounters, Series
from exporters.queue.management import MANAGEMENT, ManagementApi, Node, parsed
from exporters.queue.model import (
    ACKNOWLEDGED,
    DELIVERED,
    PUBLISHED,
    QUEUE_COUNTERS,
    REDELIVERED,
    Depth,
    Detail,
    QueueKey,
    Reading,
)
from exporters.queue.plugin import PrometheusPlugin
from exporters.queue.refresh import Refreshing
from exporters.queue.selection import OTHER, QueueFilter, cap
from exporters.queue.topology import DEFAULT_DLQ_PATTERNS, DlqPattern, Topology, resolve
from medobs.core.catalog import Metric as CatalogMetric
from medobs.core.catalog import queue as catalog
from medobs.core.runtime import (
    CollectionError,
    Deadline,
    Exporter,
    Failures,
    LinesFamily,
    counter,
    gauge,
    label_block,
)

log = logging.getLogger("medobs.exporter.queue")

#: How ``medobs_queue_keda_length`` counts, after KEDA's rabbitmq scaler: over AMQP a passive
#: queue.declare returns the ready messages only; over HTTP the management API's ``messages``
#: (ready + unacknowledged), or ``messages_ready`` with ``excludeUnacknowledged: true``.
KEDA_MODES = ("amqp", "http", "http-exclude-unacknowledged")
DEPTH_SOURCES = ("auto", "prometheus", "management")
_COUNTER_ENTRIES = dict(
    zip(QUEUE_COUNTERS, (catalog.PUBLISHED, catalog.DELIVERED, catalog.ACKNOWLEDGED, catalog.REDELIVERED))
)
_QUEUE_LABELS = catalog.MESSAGES_READY.labels
#: Until the topology and the details are first read, each try is bounded by this many scrape
#: budgets (``--scrape-timeout-ceiling``), not by their interval.
FIRST_READ_SCRAPES = 3


@dataclass(frozen=True)
class Settings:
    """What the command line configures (see ``medobs exporter queue --help``)."""

    depth_source: str = "auto"
    prometheus_urls: tuple[str, ...] = ()
    topology_interval: float = 60.0
    details_interval: float = 30.0
    keda_mode: str = "amqp"
    max_queues: int = 5000
    dlq_patterns: tuple[str, ...] = DEFAULT_DLQ_PATTERNS
    queue_filter: QueueFilter = field(default_factory=QueueFilter)
    ceiling: float = 10.0


class QueueExporter(Exporter):
    """RabbitMQ queues and dead-letter queues (see the module docstring for a sample)."""

    def __init__(self, management: ManagementApi, plugin: PrometheusPlugin, settings: Settings = Settings()):
        super().__init__((catalog.UP, catalog.SCRAPE_DURATION, catalog.SCRAPE_ERRORS, catalog.LAST_SUCCESS), settings.ceiling)
        self.management, self.plugin, self.settings = management, plugin, settings
        self.patterns = [DlqPattern(glob) for glob in settings.dlq_patterns]
        background = threading.Lock()
        self.topology: Refreshing[Topology] = Refreshing(
            self._read_topology, settings.topology_interval, max(settings.topology_interval, settings.ceiling),
            self._topology_read, background, FIRST_READ_SCRAPES * settings.ceiling,
        )
        self.details: Refreshing[Reading] = Refreshing(
            self._read_details, settings.details_interval, max(settings.details_interval, settings.ceiling),
            lambda error: self._note("details", error), background, FIRST_READ_SCRAPES * settings.ceiling,
        )
        self.queue_counters = MonotonicCounters()
        self.dead_letters = MonotonicCounters()
        self._other_totals: dict[Series, float] = {}
        self._blocks: dict[tuple, Any] = {}
        self._dead_letter_family: tuple[Topology, LinesFamily] | None = None
        self._node_up: dict[str, bool] = {}
        self.reads = Failures(log, lambda source: f"{self.describe_backend()}: {source} read")

    def describe_backend(self) -> str:
        return self.management.describe()

    # -- reading ---------------------------------------------------------------------------

    def _note(self, source: str, error: CollectionError | None) -> None:
        """Count a failed read of ``source`` that does not fail the collection; log one line when its state changes."""
        if error is None:
            self.reads.success(source)
        else:
            self.reads.failure(error, source)

    def _topology_read(self, error: CollectionError | None) -> None:
        # Until there is a topology, its failures fail the collection, which counts and logs them.
        if error is None or self.topology.value is not None:
            self._note("topology", error)

    def _nodes(self, topology: Topology) -> list[Node]:
        if self.settings.prometheus_urls:
            return [Node(url, True, url) for url in self.settings.prometheus_urls]
        return topology.nodes

    def _uses_plugin(self, topology: Topology) -> bool:
        if self.settings.depth_source != "auto":
            return self.settings.depth_source == "prometheus"
        return any(node.prometheus_url for node in self._nodes(topology))

    def _read_topology(self, deadline: Deadline) -> Topology:
        api = self.management
        nodes, queues, policies = api.nodes(deadline), api.queues(deadline), api.policies(deadline)
        exchanges, bindings = api.exchanges(deadline), api.bindings(deadline)
        topology = parsed(
            "/api/{queues,policies,exchanges,bindings}", api.base_url,
            lambda: resolve(nodes, queues, policies, exchanges, bindings, self.patterns),
        )
        topology.fetched_at = time.monotonic()
        return topology

    def _read_details(self, deadline: Deadline) -> Reading:
        topology = self.topology.value
        if topology is None or not self._uses_plugin(topology):
            return self.management.queue_statistics(deadline)
        return self._from_nodes(topology, deadline, self.plugin.read_details, "details", track_nodes=False)

    def _read_depths(self, topology: Topology, deadline: Deadline) -> Reading:
        if not self._uses_plugin(topology):
            reading = self.management.depths(deadline)
        else:
            reading = self._from_nodes(topology, deadline, self.plugin.read_depths, "plugin", track_nodes=True)
        rejected = sorted(reading.rejected)
        self._note("values", CollectionError(
            "malformed", f"{len(rejected)} queues left out for impossible numbers (negative or out of range), "
            f"first {rejected[0][1]!r} in vhost {rejected[0][0]!r}",
        ) if rejected else None)
        return reading

    def _from_nodes(
        self, topology: Topology, deadline: Deadline, read: Callable[[str, str, Deadline], Reading], source: str,
        track_nodes: bool,
    ) -> Reading:
        """One reading merged from every node's plugin; fails only when no node answers.

        A queue reported by several nodes is taken from the node the listing places it on.
        """
        merged = Reading()
        errors: list[CollectionError] = []
        for node in self._nodes(topology):
            reading = None
            if node.running and node.prometheus_url:
                try:
                    reading = read(node.name, node.prometheus_url, deadline)
                except CollectionError as error:
                    errors.append(error)
            if track_nodes:
                self._node_up[node.name] = reading is not None
            if reading is None:
                continue
            merged.answered |= reading.answered
            merged.rejected |= reading.rejected
            merged.counters.update(reading.counters)
            for attribute in ("depths", "details"):
                into, new = getattr(merged, attribute), getattr(reading, attribute)
                for key, value in new.items():
                    info = topology.queues.get(key)
                    if key not in into or (info is not None and info.node == node.name):
                        into[key] = value
        if not merged.answered:  # the caller counts and logs the failure
            raise errors[0] if errors else CollectionError("connection", "no running node has the Prometheus plugin")
        for error in errors:
            self._note(source, error)
        if not errors:
            self._note(source, None)
        return merged

    # -- one collection --------------------------------------------------------------------

    def collect_families(self, deadline: Deadline) -> Iterable[Metric]:
        memory.trim()  # what the last scrape's exposition freed
        topology = self.topology.get(deadline)
        if topology is None:
            raise self.topology.error or CollectionError(
                "timeout", f"the topology (nodes, queues, policies, bindings) not read within {deadline.seconds:.1f}s"
            )
        current = self._read_depths(topology, deadline)
        details = self.details.get(deadline) or Reading()
        depths = current.depths
        if self.settings.queue_filter != QueueFilter():
            depths = {key: depth for key, depth in depths.items() if self.settings.queue_filter(key)}
        if MANAGEMENT not in current.answered:  # counters come with the depths, dead-letter counters with the details
            counted = current
            self.dead_letters.update(details.counters, details.answered)
        else:  # counters come from the statistics listing, on the details cadence
            counted = details
            for key, depth in depths.items():  # and so do the consumer counts
                depth.consumers = details.details[key].consumers if key in details.details else None
        growth = self.queue_counters.update(counted.counters, counted.answered, keep=lambda s: s[1:] in depths)
        kept, folded = cap(depths, self.settings.max_queues)
        blocks = _Blocks(self._blocks)
        now = time.time()
        exposed = [self._queue_series(key, topology, depths[key], details.details.get(key), now, blocks) for key in kept]
        exposed += self._aggregate_series(folded, topology, depths, details.details, growth, now, blocks)
        self._blocks = blocks.used
        families = _families(exposed, self.settings.keda_mode, with_counters=bool(counted.answered))
        return families + self._topology_families(topology) + self._own_families(len(folded))

    def _queue_series(
        self, key: QueueKey, topology: Topology, depth: Depth, detail: Detail | None, now: float, blocks: _Blocks
    ) -> _Series:
        info = topology.queues.get(key)
        values, block, state_series = blocks.queue(key, topology.role(key), depth.state or (info.state if info else None))
        totals, (vhost, queue) = self.queue_counters.totals, key
        return _Series(
            values, block, depth, _oldest_age(depth, detail, now),
            detail.consumer_utilisation if detail is not None else None,
            (  # in QUEUE_COUNTERS order
                totals.get((PUBLISHED, vhost, queue), 0.0), totals.get((DELIVERED, vhost, queue), 0.0),
                totals.get((ACKNOWLEDGED, vhost, queue), 0.0), totals.get((REDELIVERED, vhost, queue), 0.0),
            ),
            state_series,
        )

    def _aggregate_series(
        self, folded: Sequence[QueueKey], topology: Topology, depths: dict[QueueKey, Depth],
        details: dict[QueueKey, Detail], growth: dict[Series, float], now: float, blocks: _Blocks,
    ) -> list[_Series]:
        """The queues beyond the cap, summed per vhost and role (counters kept monotonic)."""
        groups: dict[tuple[str, str], list[QueueKey]] = {}
        for key in folded:
            groups.setdefault((key[0], topology.role(key)), []).append(key)
        exposed = []
        for (vhost, role), keys in sorted(groups.items()):
            for name in QUEUE_COUNTERS:
                series = (name, vhost, role)
                self._other_totals[series] = self._other_totals.get(series, 0.0) + sum(
                    growth.get((name, *key), 0.0) for key in keys
                )
            depth = Depth(
                sum(depths[key].ready for key in keys),
                sum(depths[key].unacknowledged for key in keys),
                sum(depths[key].consumers or 0 for key in keys),
            )
            ages = [age for age in (_oldest_age(depths[key], details.get(key), now) for key in keys) if age is not None]
            values = (vhost, OTHER, role)
            totals = tuple(self._other_totals[(name, vhost, role)] for name in QUEUE_COUNTERS)
            exposed.append(_Series(
                values=values, block=blocks.get(_QUEUE_LABELS, values), depth=depth, oldest_age=max(ages, default=None),
                utilisation=None, counters=totals, state=None,
            ))
        return exposed

    def _dead_letter_info(self, topology: Topology) -> LinesFamily:
        """``medobs_queue_dead_letter_info``, built once per topology read (it changes only with it)."""
        cached = self._dead_letter_family
        if cached is not None and cached[0] is topology:
            return cached[1]
        info = LinesFamily(catalog.DEAD_LETTER_INFO)
        names = catalog.DEAD_LETTER_INFO.labels
        for route in topology.routes:
            if self.settings.queue_filter(route.queue):
                for dlq in route.dead_letter_queues or ("",):
                    values = (*route.queue, route.exchange, dlq, route.resolved_by)
                    info.add(values, label_block(names, values), 1.0)
        self._dead_letter_family = (topology, info)
        return info

    def _topology_families(self, topology: Topology) -> list[Metric]:
        families: list[Metric] = [
            self._dead_letter_info(topology), gauge(catalog.TOPOLOGY_AGE, value=time.monotonic() - topology.fetched_at),
        ]
        details_age = self.details.age()
        if details_age is not None:
            families.append(gauge(catalog.DETAILS_AGE, value=details_age))
        if self.dead_letters.totals:
            dead_lettered = counter(catalog.DEAD_LETTERED)
            for (_, queue_type, reason, strategy), total in sorted(self.dead_letters.totals.items()):
                dead_lettered.add_metric([queue_type, reason, strategy], total)
            families.append(dead_lettered)
        return families

    def _own_families(self, dropped: int) -> list[Metric]:
        node_up = gauge(catalog.NODE_UP)
        for node, up in sorted(self._node_up.items()):
            node_up.add_metric([node], 1 if up else 0)
        read_errors = counter(catalog.READ_ERRORS)
        for (source, kind), count in self.reads.errors().items():
            read_errors.add_metric([source, kind], count)
        return [gauge(catalog.QUEUES_DROPPED, value=dropped), node_up, read_errors]


def _oldest_age(depth: Depth, detail: Detail | None, now: float) -> float | None:
    """0 for an empty queue; else the head message's age (None when its timestamp is unknown).

    The head timestamp is read on the details cadence: until the next read, the age counts from
    the head read then, which is exact while that message is still at the head and an upper
    bound once consumers have moved on.
    """
    if depth.messages == 0:
        return 0.0
    if detail is None or detail.head_message_timestamp is None:
        return None
    return max(0.0, now - detail.head_message_timestamp)


class _Blocks:
    """Label blocks, rendered once and handed from one collection to the next (series mostly stay)."""

    def __init__(self, previous: dict[tuple, Any]):
        self.previous = previous
        self.used: dict[tuple, Any] = {}

    def get(self, names: tuple[str, ...], values: tuple[str, ...]) -> str:
        key = (names, values)
        block = self.used[key] = self.previous.get(key) or label_block(names, values)
        return block

    def queue(self, key: QueueKey, role: str, state: str | None) -> tuple[tuple[str, str, str], str, _StateSeries | None]:
        """A queue's label values and block, and its state series' (one lookup a queue and scrape)."""
        labels = self.previous.get((key, role, state))
        if labels is None:
            values = (key[0], key[1], role)
            state_series = None
            if state:
                state_values = (key[0], key[1], state)
                state_series = (state_values, label_block(catalog.STATE.labels, state_values))
            labels = (values, label_block(_QUEUE_LABELS, values), state_series)
        self.used[(key, role, state)] = labels
        return labels


#: A state series' label values and block.
_StateSeries = tuple[tuple[str, ...], str]


@dataclass(slots=True)
class _Series:
    """One exposed queue (or aggregate of queues) in one collection."""

    values: tuple[str, str, str]
    block: str
    depth: Depth
    oldest_age: float | None
    utilisation: float | None
    counters: tuple[float, ...]  # in QUEUE_COUNTERS order
    state: _StateSeries | None  # None: unknown


def _families(exposed: list[_Series], keda_mode: str, with_counters: bool) -> list[Metric]:
    """The per-queue families, each built in one pass (thousands of queues, a dozen families)."""

    def family(entry: CatalogMetric, rows: list) -> LinesFamily:
        built = LinesFamily(entry)
        built.rows = rows
        return built

    keda_counts_unacked = keda_mode == "http"
    families = [
        family(catalog.MESSAGES_READY, [(s.values, s.block, s.depth.ready) for s in exposed]),
        family(catalog.MESSAGES_UNACKED, [(s.values, s.block, s.depth.unacknowledged) for s in exposed]),
        family(catalog.MESSAGES, [(s.values, s.block, s.depth.messages) for s in exposed]),
        family(catalog.KEDA_LENGTH, [
            (s.values, s.block, s.depth.messages if keda_counts_unacked else s.depth.ready) for s in exposed
        ]),
        family(catalog.CONSUMERS, [(s.values, s.block, s.depth.consumers) for s in exposed if s.depth.consumers is not None]),
        family(catalog.CONSUMER_UTILISATION, [(s.values, s.block, s.utilisation) for s in exposed if s.utilisation is not None]),
        family(catalog.OLDEST_MESSAGE_AGE, [(s.values, s.block, s.oldest_age) for s in exposed if s.oldest_age is not None]),
    ]
    if with_counters:
        families += [
            family(entry, [(s.values, s.block, s.counters[i]) for s in exposed]) for i, entry in enumerate(_COUNTER_ENTRIES.values())
        ]
    families.append(family(catalog.STATE, [
        (*s.state, 1) for s in exposed if s.state is not None
    ]))
    return families
