"""The exporter's background tasks (PCIe sampling, pod attribution, XID events) and their health.

Work that is slow (PCIe throughput blocks about 20 ms a read) or remote (the kubelet) runs in
threads started once and stopped cleanly; scrapes read what they left, with its age::

    medobs_gpu_background_age_seconds{task="pcie"} 3.2
    medobs_gpu_background_errors_total{task="pods",kind="connection"} 1.0
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client.core import Metric

from medobs.core.catalog import gpu
from medobs.core.runtime import CollectionError, Failures, counter, gauge

log = logging.getLogger("medobs.exporter.gpu")


class BackgroundHealth(Failures):
    """When each task last succeeded and how often it failed, by kind; logs once per change."""

    def __init__(self) -> None:
        super().__init__(log, str)

    def families(self) -> list[Metric]:
        age, errors = gauge(gpu.BACKGROUND_AGE), counter(gpu.BACKGROUND_ERRORS)
        for task, seconds in self.ages().items():
            age.add_metric([task], seconds)
        for (task, kind), count in self.errors().items():
            errors.add_metric([task, kind], count)
        return [age, errors]


class Worker:
    """A named thread that runs ``loop(stopping)`` until :meth:`stop` sets ``stopping`` and joins it."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None]):
        self.name, self.loop = name, loop
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self.loop, args=(self.stopping,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class Periodic:
    """Runs ``work`` every ``interval`` seconds in a thread until :meth:`stop`.

    ``work`` returns whether it refreshed its values (False: nothing to do, as when the kubelet
    socket is absent) or raises :class:`CollectionError`; both are reported to ``health``.
    """

    def __init__(self, task: str, interval: float, work: Callable[[], bool], health: BackgroundHealth):
        self.task, self.interval, self.work, self.health = task, interval, work, health
        self._worker = Worker(f"gpu-{task}", self._run)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()
        self.health.forget(self.task)

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                if self.work():
                    self.health.success(self.task)
            except CollectionError as error:
                self.health.failure(error, self.task)
            except Exception as error:  # a bug must not end the thread silently
                log.exception("%s: unexpected error", self.task)
                self.health.failure(CollectionError("internal", f"{type(error).__name__}: {error}"), self.task)
            stopping.wait(self.interval)
