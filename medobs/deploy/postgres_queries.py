"""Custom queries for prometheus-postgres-exporter (``--extend.query-path``).

postgres_exporter 0.11 has no replication lag or transaction-ID age built in; these queries
add them under the catalog's names (namespace + column: ``pg_replication`` + ``lag`` gives
``pg_replication_lag``). Generated into ``build/postgres-exporter/queries.yaml``, read by the
local stack and docker-compose, and mounted into the exporter's ConfigMap in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from medobs.core.catalog import Metric, postgres
from medobs.core.output import to_yaml


def _column(entry: Metric, namespace: str) -> str:
    prefix = namespace + "_"
    if not entry.name.startswith(prefix):
        raise ValueError(f"{entry.name} is not in namespace {namespace}")
    return entry.name[len(prefix):]


def _query(namespace: str, sql: str, labels: tuple[str, ...], gauges: tuple[Metric, ...], master: bool) -> dict[str, Any]:
    metrics = [{label: {"usage": "LABEL", "description": f"The {label}."}} for label in labels]
    metrics += [{_column(g, namespace): {"usage": "GAUGE", "description": g.help}} for g in gauges]
    return {namespace: {"query": sql, "master": master, "metrics": metrics}}


def queries() -> dict[str, Any]:
    return {
        **_query(
            "pg_replication",
            "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
            " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
            " ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())) END AS lag,"
            " CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END AS is_replica",
            (),
            (postgres.REPLICATION_LAG, postgres.IS_REPLICA),
            master=True,
        ),
        **_query(
            "pg_database_xid",
            "SELECT datname, age(datfrozenxid) AS age FROM pg_database WHERE datallowconn",
            ("datname",),
            (postgres.XID_AGE,),
            master=True,
        ),
    }


def build_files() -> dict[str, str]:
    return {"postgres-exporter/queries.yaml": to_yaml(queries(), source="medobs/deploy/postgres_queries.py")}
