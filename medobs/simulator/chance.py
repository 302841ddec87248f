"""Reproducible chance: every random decision of the simulator comes from the ``--seed``.

- :class:`Share` picks exactly a given share of events (``ratio`` 0.25: every fourth on
  average, evenly spread, starting at a seeded phase), so an injected 25 % error share is
  25 % of requests within one request, not a noisy estimate of it;
- :func:`stream` gives each component its own seeded generator, so adding a component does not
  shift another's sequence.
"""

from __future__ import annotations

import random
import threading


def stream(seed: int, name: str) -> random.Random:
    """A generator for one component, derived from the run's seed and the component's name."""
    return random.Random(f"{seed}/{name}")


class Share:
    """Selects ``ratio`` of the events it is asked about, exactly and evenly spread.

    An accumulator gains ``ratio`` per event and selects the event when it reaches 1, so after
    ``n`` events ``floor(phase + n * ratio)`` have been selected. ``ratio`` may change at any time;
    thread-safe.
    """

    def __init__(self, seed: int, name: str, ratio: float = 0.0):
        self.ratio = ratio
        self._credit = stream(seed, name).random()
        self._lock = threading.Lock()

    def pick(self) -> bool:
        with self._lock:
            self._credit += self.ratio
            if self._credit >= 1.0:
                self._credit -= 1.0
                return True
            return False


class Dice:
    """A seeded generator shared by threads (each draw under a lock)."""

    def __init__(self, seed: int, name: str):
        self._random = stream(seed, name)
        self._lock = threading.Lock()

    def jitter(self, sigma: float = 0.3) -> float:
        """A log-normal factor with median 1 (how service times spread)."""
        with self._lock:
            return self._random.lognormvariate(0.0, sigma)

    def randint(self, low: int, high: int) -> int:
        with self._lock:
            return self._random.randint(low, high)

    def choice(self, weights: dict[str, float]) -> str:
        with self._lock:
            return self._random.choices(list(weights), list(weights.values()))[0]
