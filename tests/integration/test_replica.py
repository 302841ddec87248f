"""The local stack's PostgreSQL streaming replica as a component on its own: a real copy of the
shared primary that streams from it, the primary left as it was once it stops, and one clear
line when it cannot start."""

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from medobs import UserError, replica, stack
from tests.conftest import REPO, medobs
from tests.simulator_support import ADMIN_DSN, unique
from tests.stack_support import (
    assert_primary_left_as_it_was,
    replication_on_primary,
    wait_until,
)


def primary_major() -> int:
    with psycopg.connect(ADMIN_DSN) as primary:
        return int(primary.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()[0])


#: The first port above the kernel's ephemeral range: no connection of a test running beside
#: takes one of the ports from here up between the check and the stack's start.
ABOVE_EPHEMERAL = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[1]) + 1


def offset_for_free_ports(tmp_path, names: list[str]) -> int:
    """A port offset at which the stack's ports ``names`` are all free, above the ephemeral range."""
    ports = [stack.Stack(tmp_path, REPO, 0).port(name) for name in names]
    for offset in range(ABOVE_EPHEMERAL - min(ports), 65536 - max(ports)):
        if not any(stack.port_in_use(port + offset) for port in ports):
            return offset
    raise AssertionError(f"no free ports for {names} above {ABOVE_EPHEMERAL}")


def offset_for_a_free_replica_port(tmp_path) -> int:
    """A port offset that puts the replica on a free port (for a test that starts nothing else)."""
    return offset_for_free_ports(tmp_path, [stack.REPLICA.name])


def offset_for_free_stack_ports(tmp_path) -> int:
    """A port offset at which every port of the stack is free (`up` checks them all first)."""
    return offset_for_free_ports(tmp_path, [name for comp in stack.COMPONENTS for name in comp.ports])


@pytest.fixture
def replica_stack(tmp_path) -> Iterator[stack.Stack]:
    """A stack of which only the replica runs; stopped afterwards."""
    only_the_replica = stack.Stack(tmp_path / "state", REPO / "build", offset_for_a_free_replica_port(tmp_path))
    yield only_the_replica
    stack.stop(only_the_replica, stack.REPLICA)


@pytest.fixture
def schema_on_primary() -> Iterator[str]:
    name = unique("medobs_test").replace("-", "_")
    yield name
    with psycopg.connect(ADMIN_DSN, autocommit=True) as primary:
        primary.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_the_replica_streams_a_copy_of_the_primary_and_stopping_it_leaves_the_primary_as_it_was(
    replica_stack, schema_on_primary,
):
    slots_before = replication_on_primary()[1]
    process, started = stack.start(replica_stack, stack.REPLICA)
    stack.wait_ready(replica_stack, stack.REPLICA, process)
    standby = stack.REPLICA.replica(replica_stack)
    assert started and standby.is_ready()
    # PostgreSQL refuses root: under root it runs as the postgres user, its data folder private to it
    owner = "postgres" if os.geteuid() == 0 else process.username()
    assert process.username() == owner
    data = standby.data_dir.stat()
    assert stat.S_IMODE(data.st_mode) == 0o700 and data.st_uid == process.uids().real

    assert standby.application_name in replication_on_primary()[0]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as primary:
        state = primary.execute("SELECT state FROM pg_stat_replication WHERE application_name = %s",
                                [standby.application_name]).fetchone()
        assert state == ("streaming",)
        table = sql.Identifier(schema_on_primary, "written_on_the_primary")
        primary.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema_on_primary)))
        primary.execute(sql.SQL("CREATE TABLE {} AS SELECT 42 AS answer").format(table))

    def read_on_the_replica():
        with psycopg.connect(standby.dsn) as copy:
            try:
                return copy.execute(sql.SQL("SELECT answer FROM {}").format(table)).fetchone()
            except psycopg.errors.UndefinedTable:
                return None

    assert wait_until(read_on_the_replica, timeout=15, what="the primary's write replayed on the replica") == (42,)
    with psycopg.connect(standby.dsn) as copy, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        copy.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))

    assert stack.stop(replica_stack, stack.REPLICA)
    assert process.status() == psutil.STATUS_ZOMBIE  # exited; this test's process, its parent, reaps it
    assert_primary_left_as_it_was(standby, slots_before)


@pytest.fixture
def role_on_primary() -> Iterator[str]:
    """A login role of our own on the primary, not a superuser; dropped afterwards."""
    name = unique("medobs_test").replace("-", "_")
    with psycopg.connect(ADMIN_DSN, autocommit=True) as primary:
        primary.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(ADMIN_DSN, autocommit=True) as primary:
        primary.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.mark.parametrize("may_replicate", [False, True], ids=["no-replication", "not-superuser"])
def test_up_without_permission_is_one_line_saying_what_to_do_and_starts_nothing(
    tmp_path, role_on_primary, may_replicate,
):
    """A role that may not replicate cannot copy the primary; one that may, but is no superuser,
    cannot read the primary's pg_hba.conf for the replica."""
    if may_replicate:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as primary:
            primary.execute(sql.SQL("ALTER ROLE {} REPLICATION").format(sql.Identifier(role_on_primary)))
    env = {**os.environ, "MEDOBS_POSTGRES_DSN": f"postgresql://{role_on_primary}@127.0.0.1:5432/postgres"}
    state = tmp_path / "state"
    result = medobs("stack", "--state-dir", str(state), "--port-offset", str(offset_for_free_stack_ports(tmp_path)),
                    "up", env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    if may_replicate:
        assert line == (f"medobs stack: error: postgres-replica: the replica takes the primary's pg_hba.conf and "
                        f"pg_ident.conf, which {role_on_primary} may not read: connect as a superuser "
                        "(MEDOBS_POSTGRES_DSN)")
    else:
        assert line == (f"medobs stack: error: postgres-replica: role {role_on_primary} may not replicate from "
                        f"127.0.0.1:5432: ALTER ROLE {role_on_primary} REPLICATION")
    assert not list(state.glob("pids/*.json")), "a component was started"
    assert not (state / "data" / stack.REPLICA.name).exists(), "the copy of the primary was left behind"


def test_the_replica_runs_the_primarys_major_version_and_says_what_to_install_without_it():
    major = primary_major()
    server = replica.server_bindir(major) / "postgres"
    assert f"(PostgreSQL) {major}." in subprocess.run([server, "--version"], capture_output=True, text=True).stdout
    # pg_config's binaries are another version's: not taken
    with pytest.raises(UserError, match=r"no PostgreSQL 99 server binaries .*: apt install postgresql-99$"):
        replica.server_bindir(99)
