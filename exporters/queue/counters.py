"""Counters that stay monotonic for Prometheus when the broker's own numbers go backwards.

The broker counts publishes, deliveries and acks per channel (and dead letters per node): when a
channel closes or a node restarts its numbers vanish, so any sum of them falls. Here each raw
counter adds what it grew by since the last reading (all of it when new or reset) to its series'
total, and a raw counter that vanishes keeps what it contributed.
"""

from __future__ import annotations

from collections.abc import Callable, Container

from exporters.queue.model import RawCounters

Series = tuple[str, ...]


class MonotonicCounters:
    """Totals per series from successive :data:`RawCounters` readings."""

    def __init__(self) -> None:
        self._last: RawCounters = {}
        self.totals: dict[Series, float] = {}

    def update(
        self, raw: RawCounters, answered: Container[str], keep: Callable[[Series], bool] | None = None
    ) -> dict[Series, float]:
        """Add a reading from the nodes in ``answered``; returns each series' growth.

        The last values of nodes that did not answer are kept, so that they are not counted
        twice when they answer again. Series for which ``keep`` is false are forgotten.
        """
        growth: dict[Series, float] = {}
        last = self._last
        for key, value in raw.items():
            previous = last.get(key)
            grown = value if previous is None or value < previous else value - previous
            growth[key[0]] = growth.get(key[0], 0.0) + grown
        current = {key: value for key, value in last.items() if key[1][0] not in answered}
        current.update(raw)
        totals = self.totals
        for series, grown in growth.items():
            totals[series] = totals.get(series, 0.0) + grown
        if keep is not None:
            for series in [s for s in totals if not keep(s)]:
                del totals[series]
            current = {key: value for key, value in current.items() if keep(key[0])}
        self._last = current
        return growth
