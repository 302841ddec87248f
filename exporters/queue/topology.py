"""Dead-letter topology: where each queue's dead letters (rejected, expired, overflowing) go,
worked out as the broker does it, and which queues are therefore dead-letter queues.

A queue's dead-letter exchange and routing key come from its ``x-dead-letter-exchange`` /
``x-dead-letter-routing-key`` arguments, else from the highest-priority policy that applies to it
(each key separately; arguments win). The dead letters are then routed through that exchange's
bindings: direct and topic exchanges by routing key, fanout (and headers, consistent-hash and
other plugin types, whose choice the topology cannot know) to every bound queue, exchange-to-
exchange bindings followed, the default exchange to the queue named by the key. Without a
dead-letter routing key a message keeps its own routing keys, taken to be the work queue's name
and the keys it is bound with. Queues that no route reaches but whose name matches a pattern
(``*.dlq``, ``*.dead``) are dead-letter queues by name, attributed to the queue named by the
pattern's ``*`` when it exists.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from exporters.queue.management import Node
from exporters.queue.model import QueueKey

ARGUMENTS, POLICY, PATTERN = "arguments", "policy", "pattern"
WORK, DLQ = "work", "dlq"
DEFAULT_DLQ_PATTERNS = ("*.dlq", "*.dead")


@dataclass(frozen=True)
class QueueInfo:
    """What the listing says about a queue (besides its depth)."""

    node: str
    state: str
    type: str


@dataclass(frozen=True)
class DeadLetterRoute:
    """A work queue's dead-lettering: exchange, key (None: the messages' own) and where they land.

    ``dead_letter_queues`` is empty when nothing receives them: the broker drops them.
    """

    queue: QueueKey
    exchange: str
    routing_key: str | None
    resolved_by: str
    dead_letter_queues: tuple[str, ...]


class DlqPattern:
    """A name pattern (``*`` any text, ``?`` one character) that marks a dead-letter queue by name."""

    def __init__(self, glob: str):
        self.glob = glob
        parts = (f"({'.*' if c == '*' else '.'})" if c in "*?" else re.escape(c) for c in glob)
        self._regex = re.compile("".join(parts) + r"\Z", re.DOTALL)

    def work_queue_of(self, name: str) -> str | None:
        """The work queue a matching name points at (the ``*``'s text), '' when it names none, None if no match."""
        match = self._regex.match(name)
        if match is None:
            return None
        return match.group(1) if self.glob.count("*") == 1 and self.glob.count("?") == 0 else ""


@dataclass
class Topology:
    """One resolved snapshot, with the cluster's nodes; ``fetched_at`` is ``time.monotonic()``."""

    nodes: list[Node]
    queues: dict[QueueKey, QueueInfo]
    routes: list[DeadLetterRoute]
    patterns: Sequence[DlqPattern] = ()
    fetched_at: float = 0.0
    dead_letter_queues: set[QueueKey] = field(init=False)
    _roles: dict[QueueKey, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.dead_letter_queues = {
            (route.queue[0], dlq) for route in self.routes for dlq in route.dead_letter_queues
        }

    def role(self, key: QueueKey) -> str:
        """``dlq`` for a queue that receives dead letters (or is named like one), else ``work``."""
        role = self._roles.get(key)
        if role is None:
            named_dlq = any(p.work_queue_of(key[1]) is not None for p in self.patterns)
            role = self._roles[key] = DLQ if key in self.dead_letter_queues or named_dlq else WORK
        return role


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""
    return _topic(binding_key.split("."), routing_key.split("."))


def _topic(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    if pattern[0] == "#":
        return any(_topic(pattern[1:], words[i:]) for i in range(len(words) + 1))
    return bool(words) and pattern[0] in ("*", words[0]) and _topic(pattern[1:], words[1:])


class _Policies:
    """The policy that applies to a queue: the highest priority of those whose pattern matches."""

    def __init__(self, policies: Iterable[dict]):
        self.by_vhost: dict[str, list[tuple[int, str, re.Pattern[str], dict]]] = defaultdict(list)
        for policy in policies:
            try:
                pattern = re.compile(policy.get("pattern", ""))
            except re.error:
                continue  # the broker accepted a PCRE pattern Python cannot read: it cannot be matched here
            entry = (int(policy.get("priority", 0)), policy.get("name", ""), pattern, policy)
            self.by_vhost[policy.get("vhost", "/")].append(entry)
        for entries in self.by_vhost.values():
            entries.sort(key=lambda e: (-e[0], e[1]))

    def definition(self, vhost: str, name: str, queue_type: str) -> dict:
        for _, _, pattern, policy in self.by_vhost.get(vhost, ()):
            applies_to = policy.get("apply-to", "all")
            if applies_to in ("all", "queues", f"{queue_type}_queues", f"{queue_type}s") and pattern.search(name):
                return policy.get("definition") or {}
        return {}


class _Router:
    """Routes a message through a vhost's exchanges and bindings to the queues it reaches."""

    def __init__(self, queues: Iterable[QueueKey], exchanges: Iterable[dict], bindings: Iterable[dict]):
        self.queues = set(queues)
        self.types = {(e["vhost"], e["name"]): e.get("type", "direct") for e in exchanges}
        self.bindings: dict[tuple[str, str], list[dict]] = defaultdict(list)
        self.bound_keys: dict[QueueKey, set[str]] = defaultdict(set)
        for binding in bindings:
            self.bindings[(binding["vhost"], binding["source"])].append(binding)
            if binding.get("destination_type") == "queue" and binding["source"]:
                self.bound_keys[(binding["vhost"], binding["destination"])].add(binding.get("routing_key", ""))

    def route(self, vhost: str, exchange: str, routing_key: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if exchange == "":
            return {routing_key} if (vhost, routing_key) in self.queues else set()
        kind = self.types.get((vhost, exchange))
        if kind is None or exchange in seen:
            return set()
        reached: set[str] = set()
        for binding in self.bindings.get((vhost, exchange), ()):
            key = binding.get("routing_key", "")
            if (kind == "direct" and key != routing_key) or (kind == "topic" and not topic_matches(key, routing_key)):
                continue
            if binding.get("destination_type") == "exchange":
                reached |= self.route(vhost, binding["destination"], routing_key, seen | {exchange})
            else:
                reached.add(binding["destination"])
        return reached


def resolve(
    nodes: list[Node],
    queues: list[dict],
    policies: list[dict],
    exchanges: list[dict],
    bindings: list[dict],
    patterns: Sequence[DlqPattern] = (),
) -> Topology:
    """The topology from the management API's listings (see the module docstring)."""
    infos = {
        (q["vhost"], q["name"]): QueueInfo(q.get("node", ""), q.get("state", "running"), q.get("type", "classic"))
        for q in queues
    }
    router = _Router(infos, exchanges, bindings)
    applicable = _Policies(policies)
    routes = []
    for q in queues:
        key = (q["vhost"], q["name"])
        arguments = q.get("arguments") or {}
        policy = applicable.definition(key[0], key[1], infos[key].type)
        if "x-dead-letter-exchange" in arguments:
            exchange, resolved_by = str(arguments["x-dead-letter-exchange"]), ARGUMENTS
        elif "dead-letter-exchange" in policy:
            exchange, resolved_by = str(policy["dead-letter-exchange"]), POLICY
        else:
            continue
        routing_key = arguments.get("x-dead-letter-routing-key", policy.get("dead-letter-routing-key"))
        own_keys = {key[1], *router.bound_keys.get(key, ())}
        keys = [str(routing_key)] if routing_key is not None else sorted(own_keys)
        reached = set().union(*(router.route(key[0], exchange, k) for k in keys))
        routes.append(DeadLetterRoute(key, exchange, routing_key, resolved_by, tuple(sorted(reached))))
    routes.extend(_pattern_routes(infos, routes, patterns))
    return Topology(nodes, infos, sorted(routes, key=lambda r: r.queue), patterns)


def _pattern_routes(
    queues: dict[QueueKey, QueueInfo], routes: list[DeadLetterRoute], patterns: Sequence[DlqPattern]
) -> list[DeadLetterRoute]:
    """Routes for dead-letter queues known only by name, to the work queues their names point at."""
    configured = {route.queue for route in routes}
    reached = {(route.queue[0], dlq) for route in routes for dlq in route.dead_letter_queues}
    by_work_queue: dict[QueueKey, set[str]] = defaultdict(set)
    for vhost, name in queues:
        if (vhost, name) in reached:
            continue
        for pattern in patterns:
            work = pattern.work_queue_of(name)
            if work and (vhost, work) in queues and (vhost, work) not in configured:
                by_work_queue[(vhost, work)].add(name)
    return [DeadLetterRoute(work, "", None, PATTERN, tuple(sorted(dlqs))) for work, dlqs in by_work_queue.items()]
