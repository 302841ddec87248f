"""The traffic loop: the platform's clients, sending its request mix to the gateway.

At ``request_rate`` requests per second (re-read from the knobs every request), it picks from
:data:`MIX` with the seeded generator: uploads (1-4 images, so 2 studies/s reach
``medical_data`` at the default 10 requests/s), study and findings reads of recent uploads,
reads of studies that do not exist (the healthy 2 % of 404s), and predicts of 1-4 images
through the gateway to TF Serving. At most ``max_in_flight`` requests wait at once; beyond that
a request is skipped and counted, as a client with a bounded pool would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from medobs.simulator import httpserver
from medobs.simulator.chance import Dice
from medobs.simulator.scenarios import Knobs
from medobs.simulator.studies import MODALITIES
from medobs.simulator.tfserving import SAMPLE_IMAGE

log = logging.getLogger("medobs.simulator.traffic")

#: Share of each kind of request in the traffic.
MIX = {"upload": 0.20, "study": 0.38, "missing": 0.02, "findings": 0.20, "predict": 0.20}
CLIENT_TIMEOUT = 15.0
#: Ids of studies that never exist (the 404 share).
MISSING_STUDY_ID = 999_999_999
#: Late by more than this, the schedule restarts from now instead of catching up in a burst.
MAX_LAG = 1.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None


class Traffic:
    """Sends :data:`MIX` to the gateway at ``knobs().request_rate`` until stopped."""

    def __init__(self, gateway_url: str, knobs: Callable[[], Knobs], seed: int, max_in_flight: int = 64):
        self.gateway_url = gateway_url.rstrip("/")
        self.knobs = knobs
        self.dice = Dice(seed, "traffic")
        self.max_in_flight = max_in_flight
        self.statuses: Counter[str] = Counter()  # HTTP status (or "error") -> count
        self.skipped = 0
        self.in_flight = 0
        self._studies: deque[int] = deque(maxlen=1000)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="traffic")
        self._sessions = httpserver.Sessions()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def next_request(self) -> Request:
        """The next request of the mix (a study read becomes an upload until one exists)."""
        kind = self.dice.choice(MIX)
        with self._lock:
            known = list(self._studies)
        if kind in ("study", "findings") and not known:
            kind = "upload"
        if kind == "upload":
            modality = MODALITIES[self.dice.randint(0, len(MODALITIES) - 1)]
            return Request("POST", "/api/v1/studies", {"modality": modality, "images": self.dice.randint(1, 4)})
        if kind == "predict":
            return Request("POST", "/api/v1/inference/predict",
                           {"instances": [SAMPLE_IMAGE] * self.dice.randint(1, 4)})
        if kind == "missing":
            return Request("GET", f"/api/v1/studies/{MISSING_STUDY_ID}")
        study = known[self.dice.randint(0, len(known) - 1)]
        suffix = "/findings" if kind == "findings" else ""
        return Request("GET", f"/api/v1/studies/{study}{suffix}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stopping.is_set():
            rate = self.knobs().request_rate
            if rate <= 0:
                self._stopping.wait(0.5)
                due = time.monotonic()
                continue
            due = max(due + 1.0 / rate, time.monotonic() - MAX_LAG)
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            with self._lock:
                full = self.in_flight >= self.max_in_flight
                self.in_flight += 0 if full else 1
            if full:
                self.skipped += 1
                continue
            self._pool.submit(self._send, self.next_request())

    def _send(self, request: Request) -> None:
        try:
            try:
                answer = self._sessions.get().request(
                    request.method, self.gateway_url + request.path, json=request.body, timeout=CLIENT_TIMEOUT)
                outcome = str(answer.status_code)
                if answer.status_code == 201:
                    with self._lock:
                        self._studies.append(int(answer.json()["studyId"]))
            except (requests.RequestException, ValueError, KeyError):
                outcome = "error"
            with self._lock:
                self.statuses[outcome] += 1
        finally:
            with self._lock:
                self.in_flight -= 1
