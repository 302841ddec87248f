"""A value read on its own cadence in the background (the topology, the queue details), so that
scrapes only wait for it when there is none yet, and read the last good one otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from exporters.queue import memory
from medobs.core.runtime import CollectionError, Deadline

T = TypeVar("T")


class Refreshing(Generic[T]):
    """``fetch`` run at most once per ``interval`` seconds (on every get until it first succeeds), one
    run at a time, each bounded by ``timeout``; until the first success, by ``first_timeout`` (a
    few scrapes: a hostile answer cannot hold the first value back for a whole ``timeout``).

    ``on_result(error)`` is told how each run ended (None for success). Runs of the values that
    share a ``serial`` lock take turns (their answers are large: never in memory at once).
    """

    def __init__(
        self,
        fetch: Callable[[Deadline], T],
        interval: float,
        timeout: float,
        on_result: Callable[[CollectionError | None], None],
        serial: threading.Lock | None = None,
        first_timeout: float | None = None,
    ):
        self.fetch, self.interval, self.timeout, self.on_result = fetch, interval, timeout, on_result
        self.serial = serial or threading.Lock()
        self.first_timeout = first_timeout or timeout
        self.value: T | None = None
        self.error: CollectionError | None = None
        self._fetched_at: float | None = None
        self._started_at: float | None = None
        self._running: threading.Thread | None = None
        self._lock = threading.Lock()

    def age(self) -> float | None:
        """Seconds since the value was read (None before the first success)."""
        return None if self._fetched_at is None else time.monotonic() - self._fetched_at

    def get(self, deadline: Deadline) -> T | None:
        """The latest value; starts a refresh when due, and waits for it (bounded) only if there is none."""
        with self._lock:
            due = self.value is None or time.monotonic() - (self._started_at or 0.0) >= self.interval
            if self._running is None and due:
                self._started_at = time.monotonic()
                timeout = self.timeout if self.value is not None else min(self.timeout, self.first_timeout)
                self._running = threading.Thread(target=self._run, args=(timeout,), daemon=True, name="refresh")
                self._running.start()
            running = self._running
        if self.value is None and running is not None:
            running.join(deadline.remaining())
        return self.value

    def _run(self, timeout: float) -> None:
        deadline = Deadline(timeout)
        try:
            with self.serial:
                value, error = self.fetch(deadline), None
        except CollectionError as failure:
            value, error = None, failure
        except Exception as failure:  # a bug or an unexpected answer: reported, never raised in a thread
            value, error = None, CollectionError("internal", f"{type(failure).__name__}: {failure}")
        with self._lock:
            if error is None:
                self.value, self._fetched_at = value, time.monotonic()
            self.error = error
            self._running = None
        memory.trim()  # the answers read and the value replaced
        self.on_result(error)
