"""What the readers hand the collector: one queue's depth, its slower details, raw counters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: (vhost, queue name)
QueueKey = tuple[str, str]

#: The counters the exporter exposes per queue (keys of :attr:`Reading.counters` series).
PUBLISHED, DELIVERED, ACKNOWLEDGED, REDELIVERED = "published", "delivered", "acknowledged", "redelivered"
QUEUE_COUNTERS = (PUBLISHED, DELIVERED, ACKNOWLEDGED, REDELIVERED)

#: The largest count taken as real (2**53: beyond it a float no longer holds every integer).
MAX_COUNT = float(1 << 53)

#: A raw counter reading: ((counter, *series labels), (node, what)) -> value, where ``what`` says
#: what else the broker counts it by (a channel, an exchange). Such counters vanish with their
#: channel, so their sum goes backwards; :class:`~.counters.MonotonicCounters` makes totals of them.
RawCounters = dict[tuple[tuple[str, ...], tuple[str, str]], float]


@dataclass(slots=True)
class Depth:
    """Messages in one queue now (``consumers`` is None where the source does not say)."""

    ready: int
    unacknowledged: int
    consumers: int | None = None
    state: str | None = None

    @property
    def messages(self) -> int:
        return self.ready + self.unacknowledged


@dataclass(slots=True)
class Detail:
    """The expensive per-queue numbers, read on the details cadence."""

    consumer_utilisation: float | None = None
    head_message_timestamp: float | None = None
    consumers: int | None = None


@dataclass
class Reading:
    """One read of depths (every scrape) or details (their own cadence), from the nodes in ``answered``."""

    depths: dict[QueueKey, Depth] = field(default_factory=dict)
    details: dict[QueueKey, Detail] = field(default_factory=dict)
    counters: RawCounters = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    #: Queues left out because the source gave them impossible numbers (negative, beyond float range).
    rejected: set[QueueKey] = field(default_factory=set)


def count(value: object) -> int | None:
    """A message or consumer count as read (None, absent: 0); None when impossible (negative,
    fractional, not finite, beyond :data:`MAX_COUNT`, not a number)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if 0 <= value <= MAX_COUNT else None


def measure(value: object) -> float | None:
    """A finite number as read (a ratio, a timestamp), None when absent or impossible."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        return None
    return number if math.isfinite(number) else None
