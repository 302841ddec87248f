"""XID errors from NVML events, counted: every occurrence, by GPU and XID code.

dcgm-exporter keeps only the last XID as a gauge, so a repeat of the same XID is invisible and
two XIDs between scrapes lose the first. Here a thread waits on an NVML event set and counts
each event; the counts live for the exporter's lifetime (an NVML re-initialisation does not
reset them)::

    medobs_gpu_xid_errors_total{uuid="GPU-8a2c...",xid="79"} 2.0
    medobs_gpu_xid_last_seen_timestamp_seconds{uuid="GPU-8a2c...",xid="79"} 1.7953e+09
"""

from __future__ import annotations

import logging
import threading
import time
from types import ModuleType
from typing import Any

from prometheus_client.core import Metric

from exporters.gpu import nvml_errors
from exporters.gpu.background import BackgroundHealth, Worker
from exporters.gpu.session import Inventory, handle_address
from medobs.core.catalog import gpu
from medobs.core.runtime import CollectionError, counter, gauge

log = logging.getLogger("medobs.exporter.gpu")

TASK = "xid"


class XidCounts:
    """XID events seen, by (uuid, xid): count, last time, and each GPU's last XID (for dcgm names)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self._last_seen: dict[tuple[str, int], float] = {}
        self._last_xid: dict[str, int] = {}

    def record(self, uuid: str, xid: int) -> None:
        with self._lock:
            key = (uuid, xid)
            self._counts[key] = self._counts.get(key, 0) + 1
            self._last_seen[key] = time.time()
            self._last_xid[uuid] = xid

    def last_xid(self, uuid: str) -> int:
        """The last XID seen on ``uuid`` (0 when none), as DCGM_FI_DEV_XID_ERRORS reports it."""
        with self._lock:
            return self._last_xid.get(uuid, 0)

    def families(self) -> list[Metric]:
        errors, last_seen = counter(gpu.XID_ERRORS), gauge(gpu.XID_LAST_SEEN)
        with self._lock:
            for (uuid, xid), count in sorted(self._counts.items()):
                errors.add_metric([uuid, str(xid)], count)
                last_seen.add_metric([uuid, str(xid)], self._last_seen[(uuid, xid)])
        return [errors, last_seen]


class XidWatcher:
    """Waits on NVML XID events in a thread while the NVML session is up (a session Listener)."""

    def __init__(self, nvml: ModuleType, counts: XidCounts, health: BackgroundHealth, wait_ms: int = 500):
        self.nvml, self.counts, self.health, self.wait_ms = nvml, counts, health, wait_ms
        self._worker = Worker("gpu-xid", self._run)
        self._event_set: Any = None
        self._uuids: dict[int | None, str] = {}

    def start(self, inventory: Inventory) -> None:
        nvml = self.nvml
        self._uuids = {device.address: device.uuid for device in inventory.devices if device.address is not None}
        try:
            self._event_set = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as error:
            log.warning("XID events unavailable (%s): XID errors will not be counted", nvml_errors.describe(error))
            return
        watched = [device for device in inventory.devices if self._register(device)]
        if watched:
            self._worker.start()
        else:
            self._free()

    def stop(self) -> None:
        self._worker.stop()
        self._free()

    def _register(self, device: Any) -> bool:
        nvml = self.nvml
        xid = nvml.nvmlEventTypeXidCriticalError
        try:
            if device.lost_reason is None and nvml.nvmlDeviceGetSupportedEventTypes(device.handle) & xid:
                nvml.nvmlDeviceRegisterEvents(device.handle, xid, self._event_set)
                return True
            why = device.lost_reason or "XID events not supported"
        except nvml.NVMLError as error:
            why = nvml_errors.describe(error)
        log.warning("GPU %d (%s): XID errors will not be counted (%s)", device.index, device.uuid, why)
        return False

    def _free(self) -> None:
        if self._event_set is not None:
            try:
                self.nvml.nvmlEventSetFree(self._event_set)
            except self.nvml.NVMLError as error:
                log.debug("freeing the XID event set: %s", nvml_errors.describe(error))
            self._event_set = None

    def _run(self, stopping: threading.Event) -> None:
        nvml = self.nvml
        while not stopping.is_set():
            try:
                event = nvml.nvmlEventSetWait(self._event_set, self.wait_ms)
            except nvml.NVMLError_Timeout:
                continue
            except nvml.NVMLError as error:
                self.health.failure(CollectionError(nvml_errors.reason(error), str(error)), TASK)
                if nvml_errors.code(error) in nvml_errors.SESSION_FATAL:
                    return  # the session notices at the next scrape and starts a new watcher
                stopping.wait(1.0)
                continue
            if event.eventType & nvml.nvmlEventTypeXidCriticalError:
                self.counts.record(self._uuid(event.device), event.eventData)

    def _uuid(self, handle: Any) -> str:
        """The GPU an event is about; its handle is one of ours, even when the GPU is lost."""
        uuid = self._uuids.get(handle_address(handle))
        if uuid is not None:
            return uuid
        try:
            return self.nvml.nvmlDeviceGetUUID(handle)
        except self.nvml.NVMLError:
            return "unknown"
