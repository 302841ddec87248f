"""Which queues get series: include/exclude filters by vhost and queue name, and a cardinality cap
that keeps a deterministic top-N by depth and folds the rest into one aggregate per vhost and role."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from exporters.queue.model import Depth, QueueKey

#: The ``queue`` label of the aggregate of queues beyond the cap.
OTHER = "__other__"


@dataclass(frozen=True)
class QueueFilter:
    """Regular expressions matched against whole names; None means no restriction."""

    include_vhost: re.Pattern[str] | None = None
    exclude_vhost: re.Pattern[str] | None = None
    include_queue: re.Pattern[str] | None = None
    exclude_queue: re.Pattern[str] | None = None

    def __call__(self, key: QueueKey) -> bool:
        vhost, queue = key
        return (
            (self.include_vhost is None or self.include_vhost.fullmatch(vhost) is not None)
            and (self.exclude_vhost is None or self.exclude_vhost.fullmatch(vhost) is None)
            and (self.include_queue is None or self.include_queue.fullmatch(queue) is not None)
            and (self.exclude_queue is None or self.exclude_queue.fullmatch(queue) is None)
        )


def cap(depths: Mapping[QueueKey, Depth], limit: int) -> tuple[list[QueueKey], list[QueueKey]]:
    """``(kept, folded)``: the ``limit`` deepest queues (ties by name, so the choice is stable) and the rest."""
    if len(depths) <= limit:
        return sorted(depths), []
    ranked = sorted(depths, key=lambda key: (-depths[key].messages, key))
    return sorted(ranked[:limit]), ranked[limit:]
