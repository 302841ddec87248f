"""The inference worker: consumes ``medical_data``, predicts with TF Serving, stores the findings.

For each study message: a malformed body is rejected (dead-lettered into ``medical_data.dlq``);
a prediction that fails (model unavailable, TF Serving error or unreachable) or a findings
insert that fails is requeued after a one-second back-off, so the backlog grows while the model
or the database is down; otherwise the findings go to PostgreSQL and the message is acked.
"""

from __future__ import annotations

import json
import logging

import psycopg
import requests

from medobs.simulator import database
from medobs.simulator.broker import Verdict
from medobs.simulator.hikari import DatabaseUnavailable, HikariPool, PoolTimeout
from medobs.simulator.tfserving import CLASSES, MODEL, SAMPLE_IMAGE

log = logging.getLogger("medobs.simulator.worker")

APPLICATION = "inference-worker"
PREDICT_TIMEOUT = 10.0


class InferenceWorker:
    """The handler :class:`~medobs.simulator.broker.Consumer` calls for each delivery."""

    def __init__(self, pool: HikariPool, tfserving_url: str):
        self.pool = pool
        self.predict_url = f"{tfserving_url.rstrip('/')}/v1/models/{MODEL}:predict"
        self._session = requests.Session()
        self._failing: str | None = None

    def handle(self, body: bytes) -> Verdict:
        try:
            study = json.loads(body)
            study_id, images = int(study["studyId"]), int(study["images"])
        except (ValueError, KeyError, TypeError):
            return Verdict.REJECT
        try:
            answer = self._session.post(self.predict_url, json={"instances": [SAMPLE_IMAGE] * images},
                                        timeout=PREDICT_TIMEOUT)
            if answer.status_code != 200:
                return self._failed(f"TF Serving answered {answer.status_code}")
            predictions = answer.json()["predictions"]
            findings = [dict(zip(CLASSES, scores, strict=True)) for scores in predictions]
            with self.pool.connection() as conn:
                database.store_findings(conn, study_id, "1", findings)
        except (requests.RequestException, ValueError, KeyError) as error:
            return self._failed(f"TF Serving: {type(error).__name__}")
        except (PoolTimeout, DatabaseUnavailable, psycopg.Error) as error:
            return self._failed(f"database: {type(error).__name__}")
        self._recovered()
        return Verdict.ACK

    def _failed(self, reason: str) -> Verdict:
        if reason != self._failing:
            log.warning("inference worker: %s; requeueing studies", reason)
        self._failing = reason
        return Verdict.REQUEUE

    def _recovered(self) -> None:
        if self._failing:
            log.info("inference worker: processing again")
        self._failing = None
