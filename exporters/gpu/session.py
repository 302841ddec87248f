"""The NVML session: initialised once, device handles kept, initialisation retried with backoff.

A missing library, an unloaded driver or a permission problem never ends the exporter: the
session stays down with the reason (``library_not_found`` ...), scrapes answer ``up 0``, and a
keeper thread tries again after 1 s, 2 s, 4 s ... up to ``retry_max``. When NVML fails while
running (the driver unloaded under us), readers call :meth:`Session.fail` and the same happens.

Background work that needs NVML (XID events, PCIe sampling) registers as a :class:`Listener`:
started with the device inventory when the session comes up, stopped before it goes down.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from exporters.gpu import nvml_errors
from medobs.core.runtime import CollectionError

log = logging.getLogger("medobs.exporter.gpu")

#: The state before the first initialisation attempt has finished.
_NOT_YET = ("initialising", "NVML is not initialised yet")
#: Longest a shutdown waits for a read in progress (a hung driver must not hang the exporter's exit).
SHUTDOWN_WAIT = 5.0


@dataclass(frozen=True)
class Device:
    """One GPU as enumerated at initialisation (its handle is kept for the session's life)."""

    index: int
    handle: Any
    uuid: str
    model: str
    pci_bus_id: str
    minor: int | None
    #: Set when the GPU was already lost while it was enumerated.
    lost_reason: str | None = None

    @property
    def labels(self) -> list[str]:
        """The ``gpu`` and ``uuid`` label values every per-GPU series carries."""
        return [str(self.index), self.uuid]

    @property
    def device_name(self) -> str:
        """The device node name (``nvidia0``), as dcgm-exporter's ``device`` label and GKE name it."""
        return f"nvidia{self.minor if self.minor is not None else self.index}"

    @property
    def address(self) -> int | None:
        """The handle's address, which NVML events carry to say which GPU they are about."""
        return handle_address(self.handle)


def handle_address(handle: Any) -> int | None:
    return ctypes.cast(handle, ctypes.c_void_p).value if handle is not None else None


@dataclass(frozen=True)
class Inventory:
    devices: tuple[Device, ...]
    driver: str
    cuda: str


class Listener(Protocol):
    def start(self, inventory: Inventory) -> None: ...

    def stop(self) -> None: ...


class Backoff:
    """Delays of ``first``, doubling, capped at ``cap``; :meth:`reset` after a success."""

    def __init__(self, first: float, cap: float):
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Session:
    """NVML initialised once with its device handles, or down with a reason: see the module docstring."""

    def __init__(
        self, nvml: ModuleType, listeners: Sequence[Listener] = (), retry_first: float = 1.0, retry_max: float = 60.0
    ):
        self.nvml = nvml
        self.listeners = list(listeners)
        self.backoff = Backoff(retry_first, retry_max)
        self._lock = threading.Lock()  # held while reading, so a shutdown never cuts a read short
        self._state = threading.Condition()
        self._inventory: Inventory | None = None
        self._down: tuple[str, str] | None = _NOT_YET
        self._failure: BaseException | None = None
        self._retry_at = 0.0
        self._stopping = False
        self._keeper: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """First initialisation now (so its outcome is logged at start-up), retries in a thread."""
        self._try_init()
        self._keeper = threading.Thread(target=self._keep, name="gpu-nvml-session", daemon=True)
        self._keeper.start()

    def stop(self) -> None:
        with self._state:
            self._stopping = True
            self._state.notify_all()
        if self._keeper is not None:
            self._keeper.join()
        self._teardown()

    # -- what scrapes use ---------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[Inventory]:
        """The inventory, with NVML guaranteed up while the block runs; CollectionError when down."""
        with self._lock:
            inventory, down = self._inventory, self._down
            if inventory is None:
                kind, message = down or _NOT_YET
                raise CollectionError(kind, message)
            yield inventory

    def fail(self, error: BaseException) -> None:
        """NVML stopped working under a reader: shut it down and initialise again with backoff."""
        with self._state:
            if self._failure is None and self._inventory is not None:
                self._failure = error
                self._state.notify_all()

    @property
    def unavailable(self) -> tuple[str, str] | None:
        """``(reason, message)`` while NVML cannot be used, else None."""
        with self._state:
            return self._down

    # -- the keeper ---------------------------------------------------------------------------

    def _keep(self) -> None:
        while True:
            with self._state:
                while not self._stopping and self._failure is None and not self._retry_due():
                    timeout = None if self._inventory is not None else max(0.0, self._retry_at - time.monotonic())
                    self._state.wait(timeout)
                if self._stopping:
                    return
                failure = self._failure
            if failure is not None:
                self._teardown()
                self._set_down(failure, "NVML failed while running")
            else:
                self._try_init()

    def _retry_due(self) -> bool:
        return self._inventory is None and time.monotonic() >= self._retry_at

    def _try_init(self) -> None:
        nvml = self.nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as error:
            self._set_down(error, "NVML unavailable")
            return
        try:
            inventory = self._enumerate()
        except nvml.NVMLError as error:
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()
            self._set_down(error, "NVML unavailable")
            return
        for listener in self.listeners:
            listener.start(inventory)
        with self._lock, self._state:
            self._inventory, self._down, self._failure = inventory, None, None
        self.backoff.reset()
        log.info(
            "NVML ready: %d GPU(s), driver %s, CUDA %s", len(inventory.devices), inventory.driver, inventory.cuda
        )

    def _enumerate(self) -> Inventory:
        nvml = self.nvml
        driver = nvml.nvmlSystemGetDriverVersion()
        try:
            cuda_version = nvml.nvmlSystemGetCudaDriverVersion()
            cuda = f"{cuda_version // 1000}.{cuda_version % 1000 // 10}"
        except nvml.NVMLError as error:
            if nvml_errors.code(error) not in nvml_errors.UNSUPPORTED:
                raise
            cuda = ""
        devices = tuple(self._device(index) for index in range(nvml.nvmlDeviceGetCount()))
        return Inventory(devices, driver, cuda)

    def _device(self, index: int) -> Device:
        """One GPU's identity; a GPU already lost is kept, marked lost, with what could be read."""
        nvml = self.nvml
        handle, found = None, {"uuid": "", "model": "", "pci_bus_id": "", "minor": None}
        readers = {
            "uuid": lambda: nvml.nvmlDeviceGetUUID(handle),
            "model": lambda: nvml.nvmlDeviceGetName(handle),
            "pci_bus_id": lambda: nvml.nvmlDeviceGetPciInfo(handle).busId,
            "minor": lambda: nvml.nvmlDeviceGetMinorNumber(handle),
        }
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for name, read in readers.items():
                try:
                    found[name] = read()
                except nvml.NVMLError as error:
                    if nvml_errors.code(error) not in nvml_errors.UNSUPPORTED:
                        raise
        except nvml.NVMLError as error:
            if nvml_errors.code(error) not in nvml_errors.DEVICE_LOST:
                raise
            log.warning("GPU %d is lost at start-up (%s)", index, nvml_errors.describe(error))
            return Device(index, handle, lost_reason=nvml_errors.reason(error), **found)
        return Device(index, handle, **found)

    def _set_down(self, error: BaseException, what: str) -> None:
        reason, message = nvml_errors.reason(error), nvml_errors.explain(error)
        delay = self.backoff.next()
        with self._lock, self._state:
            changed = self._down is None or self._down[0] != reason
            self._inventory, self._down, self._failure = None, (reason, message), None
            self._retry_at = time.monotonic() + delay
        if changed:
            log.warning(
                "%s (%s: %s): serving medobs_gpu_up 0, retrying initialisation with backoff (%gs doubling to %gs)",
                what, reason, message, self.backoff.first, self.backoff.cap,
            )

    def _teardown(self) -> None:
        for listener in self.listeners:
            listener.stop()
        if not self._lock.acquire(timeout=SHUTDOWN_WAIT):
            log.warning("an NVML read has hung for %gs: leaving NVML as it is", SHUTDOWN_WAIT)
            return
        try:
            if self._inventory is None:
                return
            self._inventory = None
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlShutdown()
        finally:
            self._lock.release()
