"""The platform's PostgreSQL work, as real queries against a real server.

The study service stores uploaded studies and reads them back; the inference worker stores
findings. Both run through :class:`~medobs.simulator.hikari.HikariPool`, so
postgres_exporter's transaction counters (``pg_stat_database_xact_commit``), backends and
``pg_stat_activity`` move as they would on the platform. Tables live in schema ``medobs_sim``
of the DSN's database, which is created when missing. The password comes from the DSN,
``PGPASSWORD`` or ``~/.pgpass`` (libpq's own rules) and is never logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from medobs import UserError, first_line

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/medical_platform"
SCHEMA = "medobs_sim"
CONNECT_TIMEOUT = 5
#: Studies older than this are deleted by :func:`prune` (the table stays small).
RETENTION_SECONDS = 3600

_TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.studies (
    id bigserial PRIMARY KEY,
    modality text NOT NULL,
    images integer NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.findings (
    study_id bigint PRIMARY KEY REFERENCES {SCHEMA}.studies (id) ON DELETE CASCADE,
    model_version text NOT NULL,
    findings jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


class Database:
    """Where the simulator's PostgreSQL is, and how its services connect to it."""

    def __init__(self, dsn: str = DEFAULT_DSN):
        try:
            self.params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as error:
            raise UserError(f"--pg-dsn is not a PostgreSQL connection string: {first_line(error)}") from None
        self.dsn = dsn

    def describe(self) -> str:
        """The server and database, without credentials."""
        p = self.params
        server = f"{p.get('host', 'localhost')}:{p.get('port', 5432)}"
        return f"postgresql://{p.get('user', '')}@{server}/{p.get('dbname', '')}"

    def connect(self, application: str, **overrides: Any) -> psycopg.Connection:
        params = {"connect_timeout": CONNECT_TIMEOUT, **self.params, "application_name": application, **overrides}
        return psycopg.connect(autocommit=True, **params)

    def connector(self, application: str) -> Callable[[], psycopg.Connection]:
        return lambda: self.connect(application)

    def prepare(self) -> None:
        """Create the database (when missing), the schema and the tables; UserError when unreachable."""
        try:
            conn = self.connect("medobs-simulator")
        except psycopg.OperationalError as error:
            if "does not exist" not in str(error):
                raise UserError(
                    f"cannot connect to PostgreSQL at {self.describe()}: {first_line(error)} "
                    "(start PostgreSQL or pass --pg-dsn)"
                ) from None
            self._create_database()
            conn = self.connect("medobs-simulator")
        with conn:
            conn.execute(_TABLES)

    def _create_database(self) -> None:
        name = self.params.get("dbname", "")
        try:
            with self.connect("medobs-simulator", dbname="postgres") as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            pass  # created meanwhile by another simulator
        except psycopg.Error as error:
            raise UserError(
                f"database {name!r} does not exist at {self.describe()} and cannot be created: {first_line(error)}"
            ) from None


def _hold(conn: psycopg.Connection, seconds: float) -> None:
    """Keep the connection busy in the server, as a slow query would (db-saturation)."""
    if seconds > 0:
        conn.execute("SELECT pg_sleep(%s)", (seconds,))


def insert_study(conn: psycopg.Connection, modality: str, images: int, hold: float = 0.0) -> int:
    _hold(conn, hold)
    row = conn.execute(
        f"INSERT INTO {SCHEMA}.studies (modality, images) VALUES (%s, %s) RETURNING id", (modality, images)
    ).fetchone()
    assert row is not None
    return int(row[0])


def get_study(conn: psycopg.Connection, study_id: int, hold: float = 0.0) -> dict[str, Any] | None:
    _hold(conn, hold)
    row = conn.execute(
        f"SELECT id, modality, images, received_at FROM {SCHEMA}.studies WHERE id = %s", (study_id,)
    ).fetchone()
    if row is None:
        return None
    return {"studyId": row[0], "modality": row[1], "images": row[2], "receivedAt": row[3].isoformat()}


def get_findings(conn: psycopg.Connection, study_id: int, hold: float = 0.0) -> dict[str, Any] | None:
    _hold(conn, hold)
    row = conn.execute(
        f"SELECT model_version, findings FROM {SCHEMA}.findings WHERE study_id = %s", (study_id,)
    ).fetchone()
    return None if row is None else {"modelVersion": row[0], "findings": row[1]}


def store_findings(conn: psycopg.Connection, study_id: int, model_version: str, findings: Any) -> None:
    """Store a study's findings (none when the study was pruned meanwhile, or stored already)."""
    conn.execute(
        f"INSERT INTO {SCHEMA}.findings (study_id, model_version, findings) "
        f"SELECT id, %s, %s FROM {SCHEMA}.studies WHERE id = %s ON CONFLICT (study_id) DO NOTHING",
        (model_version, json.dumps(findings), study_id),
    )


def prune(conn: psycopg.Connection, retention_seconds: float = RETENTION_SECONDS) -> int:
    """Delete studies (and their findings) older than the retention; returns how many."""
    cursor = conn.execute(
        f"DELETE FROM {SCHEMA}.studies WHERE received_at < now() - make_interval(secs => %s)",
        (retention_seconds,),
    )
    return cursor.rowcount
