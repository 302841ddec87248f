"""The study service behind the gateway: stores uploaded studies and queues them for inference.

``POST /api/v1/studies`` inserts the study into PostgreSQL (through its HikariCP pool) and
publishes it to ``medical_data`` (``{"studyId": 17, "modality": "CR", "images": 2}``, AMQP
``timestamp`` set); ``GET /api/v1/studies/{studyId}`` and ``.../findings`` read it back. A
``poison_ratio`` share of published studies is truncated JSON, which the inference worker
cannot parse and rejects into the DLQ. Failures answer as a Spring service does: 500 when the
pool times out or PostgreSQL is down, 503 when the broker does not confirm.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

import psycopg

from medobs.simulator import database
from medobs.simulator.broker import BrokerUnavailable, Publisher, message_properties
from medobs.simulator.chance import Share
from medobs.simulator.hikari import DatabaseUnavailable, HikariPool, PoolTimeout
from medobs.simulator.scenarios import Knobs

APPLICATION = "study-service"
MODALITIES = ("CR", "DX", "CT")
#: Every this many uploads, studies older than the retention are deleted.
PRUNE_EVERY = 500

T = TypeVar("T")

Answer = tuple[int, dict[str, Any]]


class ServiceError(Exception):
    """A failed request, as the service answers it: ``{"error": "Not Found", "message": ...}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    def answer(self) -> Answer:
        return self.status, {"error": HTTPStatus(self.status).phrase, "message": str(self)}


class StudyService:
    """The service's request handlers: each returns ``(HTTP status, JSON body)`` or raises ServiceError."""

    def __init__(self, pool: HikariPool, publisher: Publisher, knobs: Callable[[], Knobs], seed: int):
        self.pool, self.publisher, self.knobs = pool, publisher, knobs
        self.poison = Share(seed, "poison-messages")
        self.uploads = 0

    def upload(self, body: bytes) -> Answer:
        try:
            study = json.loads(body)
            modality, images = str(study["modality"]), int(study["images"])
            if modality not in MODALITIES or not 1 <= images <= 64:
                raise ValueError("modality or images out of range")
        except (ValueError, KeyError, TypeError) as error:
            raise ServiceError(400, f"invalid study: {error}") from None
        hold = self.knobs().db_hold_seconds
        study_id = self._query(lambda conn: database.insert_study(conn, modality, images, hold))
        message = json.dumps({"studyId": study_id, "modality": modality, "images": images}).encode()
        self.poison.ratio = self.knobs().poison_ratio
        if self.poison.pick():
            message = message[: len(message) // 2]  # the producer died mid-message
        try:
            self.publisher.publish(message, message_properties(f"study-{study_id}", APPLICATION))
        except BrokerUnavailable as error:
            raise ServiceError(503, f"study {study_id} stored but not queued: {error}") from None
        self.uploads += 1
        if self.uploads % PRUNE_EVERY == 0:
            self._query(database.prune)
        return 201, {"studyId": study_id, "status": "queued"}

    def get(self, study_id: int) -> Answer:
        hold = self.knobs().db_hold_seconds
        study = self._query(lambda conn: database.get_study(conn, study_id, hold))
        if study is None:
            raise ServiceError(404, f"no study {study_id}")
        return 200, study

    def findings(self, study_id: int) -> Answer:
        hold = self.knobs().db_hold_seconds
        findings = self._query(lambda conn: database.get_findings(conn, study_id, hold))
        if findings is None:
            return 200, {"studyId": study_id, "status": "pending"}
        return 200, {"studyId": study_id, "status": "done", **findings}

    def _query(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work`` on a pooled connection, database failures turned into the service's 500."""
        try:
            with self.pool.connection() as conn:
                return work(conn)
        except PoolTimeout as error:
            raise ServiceError(500, f"CannotGetJdbcConnectionException: {error}") from None
        except (DatabaseUnavailable, psycopg.Error) as error:
            raise ServiceError(500, f"DataAccessResourceFailureException: {error}") from None
