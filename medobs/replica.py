"""The local stack's PostgreSQL streaming replica: the platform runs its primary with one.

Each start makes a fresh physical copy of the local primary with ``pg_basebackup`` into the
stack's state folder and runs it as a hot standby with the Debian ``postgres`` binary of the
primary's major version, on a loopback port of the stack, streaming from the primary. ``down``
removes the copy. Nothing on the primary outlives the replica: it uses no replication slot (the
copy is made afresh whenever the replica starts, so there is no WAL to keep for it while it is
stopped; ``pg_basebackup``'s own slot is temporary), and its walsender ends with it.

Run as root, the replica runs as the ``postgres`` OS user, since PostgreSQL refuses root. The state
folder usually lies under a folder only root may enter (``/root``, pytest's
``/tmp/pytest-of-root``), so the server reaches its data folder through a descriptor the stack
opens for it (``-D /proc/self/fd/N``) rather than through the path.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from medobs import UserError, first_line
from medobs.core.files import write_atomic

#: The OS user PostgreSQL runs as when the stack runs as root.
OS_USER = "postgres"
#: A hot standby refuses to start when one of these is lower than on its primary.
PRIMARY_SETTINGS = (
    "max_connections", "max_locks_per_transaction", "max_prepared_transactions", "max_wal_senders",
    "max_worker_processes",
)
DEBIAN_BINDIR = "/usr/lib/postgresql/{major}/bin"
NAME = "postgres-replica"


@dataclass(frozen=True)
class Replica:
    """A streaming replica of the server at ``primary_dsn``, kept in ``data_dir``, on 127.0.0.1:``port``."""

    primary_dsn: str
    data_dir: Path
    port: int

    @property
    def application_name(self) -> str:
        """Its name in the primary's pg_stat_replication (one per stack: the port tells them apart)."""
        return f"medobs_replica_{self.port}"

    @property
    def dsn(self) -> str:
        """The primary's connection parameters (user, database, password source) pointed at the replica."""
        return make_conninfo(self.primary_dsn, host="127.0.0.1", port=str(self.port))

    @property
    def primary_address(self) -> str:
        params = conninfo_to_dict(self.primary_dsn)
        return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"

    def start(self, **popen: Any) -> subprocess.Popen:
        """Copy the primary afresh and start the standby on the copy (``popen``: its output and session)."""
        major, settings = self._query_primary(
            "SELECT current_setting('server_version_num')::int / 10000,"
            " (SELECT json_object_agg(name, setting) FROM pg_settings WHERE name = ANY(%s))",
            list(PRIMARY_SETTINGS),
        )
        bindir = server_bindir(major)
        account = _account()
        self._copy(bindir)
        try:
            self._configure(settings, account)
        except BaseException:
            self.remove()
            raise
        handle = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return subprocess.Popen(
                [str(bindir / "postgres"), "-D", f"/proc/self/fd/{handle}"], pass_fds=(handle,), cwd="/",
                **_run_as(account), **popen,
            )
        finally:
            os.close(handle)

    def is_ready(self) -> bool:
        """Whether it accepts read-only connections as a standby."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as connection:
                return bool(connection.execute("SELECT pg_is_in_recovery()").fetchone()[0])
        except psycopg.Error:
            return False

    def remove(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- the copy ----------------------------------------------------------------------------------

    def _query_primary(self, query: str, *params: Any) -> tuple[Any, ...]:
        """One row from the primary; UserError saying what to do when it cannot answer."""
        try:
            with psycopg.connect(self.primary_dsn, connect_timeout=5, autocommit=True) as connection:
                return connection.execute(query, params or None).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            raise UserError(
                f"{NAME}: the replica takes the primary's pg_hba.conf and pg_ident.conf, which {self._user} may not "
                "read: connect as a superuser (MEDOBS_POSTGRES_DSN)"
            ) from None
        except psycopg.Error as error:
            raise UserError(f"{NAME}: cannot query the primary at {self.primary_address}: {first_line(error)}") from None

    @property
    def _user(self) -> str:
        return conninfo_to_dict(self.primary_dsn).get("user") or "the DSN's role"

    def _copy(self, bindir: Path) -> None:
        """pg_basebackup into ``data_dir``, replacing an older copy (whose WAL the primary may have recycled)."""
        self.remove()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(bindir / "pg_basebackup"), "--dbname", self.primary_dsn, "--pgdata", str(self.data_dir),
             "--wal-method=stream", "--checkpoint=fast", "--no-sync"],
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            self.remove()
            raise UserError(self._basebackup_failure(result.stderr))

    def _configure(self, primary_settings: dict[str, str], account: pwd.struct_passwd | None) -> None:
        """The standby's own configuration in the copy, with the primary's access rules; the copy
        owned by the user the server runs as."""
        hba, ident = self._query_primary(
            "SELECT pg_read_file(current_setting('hba_file')), pg_read_file(current_setting('ident_file'))"
        )
        conninfo = {k: v for k, v in conninfo_to_dict(self.primary_dsn).items() if k not in ("password", "dbname")}
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",  # loopback TCP only: no socket beside the primary's
            "cluster_name": self.application_name,
            "hot_standby": "on",
            # pg_basebackup -R would write the password from PGPASSWORD here; the walreceiver reads
            # PGPASSWORD from the environment instead.
            "primary_conninfo": make_conninfo(**conninfo, application_name=self.application_name),
            "shared_buffers": "16MB",
            **primary_settings,
        }
        lines = [f"{name} = '{value.replace(chr(39), chr(39) * 2)}'" for name, value in settings.items()]
        files = {
            "postgresql.conf": "# medobs stack: a streaming replica of the local primary\n" + "\n".join(lines) + "\n",
            "postgresql.auto.conf": "",  # the primary's ALTER SYSTEM settings are not the replica's
            "standby.signal": "",
            "pg_hba.conf": hba,
            "pg_ident.conf": ident,
        }
        for name, text in files.items():
            write_atomic(self.data_dir / name, text, mode=0o600)  # as pg_basebackup leaves them
        if account is not None:
            for folder, _, names in os.walk(self.data_dir):
                for path in (folder, *(os.path.join(folder, name) for name in names)):
                    os.chown(path, account.pw_uid, account.pw_gid)

    def _basebackup_failure(self, stderr: str) -> str:
        where = self.primary_address
        if "no pg_hba.conf entry for replication connection" in stderr:
            return (
                f"{NAME}: the primary at {where} refuses replication connections from the stack: add "
                "`host replication all 127.0.0.1/32 <method>` to its pg_hba.conf and reload it "
                "(`make deps` does it, run as root)"
            )
        if "replication role" in stderr or "permission denied to start WAL sender" in stderr:
            return f"{NAME}: role {self._user} may not replicate from {where}: ALTER ROLE {self._user} REPLICATION"
        errors = [line for line in stderr.splitlines() if "error" in line.lower()] or stderr.splitlines() or ["no output"]
        return f"{NAME}: pg_basebackup from {where} failed: {errors[-1].strip()}"


def server_bindir(major: int) -> Path:
    """The folder of PostgreSQL ``major``'s server binaries: Debian's versioned folder, or pg_config's."""
    candidates = [Path(DEBIAN_BINDIR.format(major=major))]
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30).stdout.strip()
        candidates.append(Path(found))
    for bindir in candidates:
        if _major_of(bindir / "postgres") == major and (bindir / "pg_basebackup").is_file():
            return bindir
    raise UserError(
        f"{NAME}: no PostgreSQL {major} server binaries (postgres, pg_basebackup), which the replica of a "
        f"PostgreSQL {major} primary needs: apt install postgresql-{major}"
    )


def _major_of(binary: Path) -> int | None:
    if not binary.is_file():
        return None
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    # "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    words = version.split()
    return int(words[2].split(".")[0]) if len(words) > 2 and words[2].split(".")[0].isdigit() else None


def _account() -> pwd.struct_passwd | None:
    """The OS user the server runs as: ``postgres`` when the stack runs as root, else None (the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise UserError(
            f"{NAME}: PostgreSQL refuses to run as root and there is no `{OS_USER}` user to run it as: "
            "install the server (apt install postgresql) or run the stack as another user"
        ) from None


def _run_as(account: pwd.struct_passwd | None) -> dict[str, Any]:
    if account is None:
        return {}
    return {
        "user": account.pw_uid, "group": account.pw_gid,
        "extra_groups": os.getgrouplist(account.pw_name, account.pw_gid),
    }
