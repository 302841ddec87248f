"""``medobs backup-metrics``: record a backup run for node_exporter's textfile collector."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alerts import backup
from medobs import UserError

BACKUP_HELP = """\
Record a PostgreSQL backup run for node_exporter's textfile collector.

Wraps the backup command (its output passes through, its exit status is medobs's) and writes
medobs_backup_{last_success_timestamp_seconds,duration_seconds,size_bytes,exit_code}
{database="..."} to TEXTFILE_DIR/medobs_backup_<database>.prom atomically (a temporary file in
the same folder, then a rename). A failed run keeps the previous success timestamp. A command
that exits 0 but leaves no (or an empty) --artifact counts as failed, with exit code 1.

  medobs backup-metrics --database medical_db --artifact "$FILE" -- \\
    bash -o pipefail -c 'pg_dump -U postgres medical_db | gzip > "$1"' _ "$FILE"

Without a command, --exit-code and --duration record a run the script already finished.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``backup-metrics``."""
    metrics = subparsers.add_parser(
        "backup-metrics", help="record a backup run for node_exporter's textfile collector",
        description=BACKUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    metrics.add_argument("--database", required=True, help="the database backed up (the `database` label)")
    metrics.add_argument(
        "--textfile-dir", type=Path, default=backup.DEFAULT_TEXTFILE_DIR,
        help="node_exporter's --collector.textfile.directory (default: %(default)s)",
    )
    metrics.add_argument("--artifact", type=Path, help="the backup file the command writes (its size is recorded)")
    metrics.add_argument("--exit-code", type=int, help="record a finished run with this exit status (no command)")
    metrics.add_argument("--duration", type=float, help="with --exit-code: how many seconds the run took")
    metrics.add_argument(
        "backup_command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the backup command and its arguments"
    )
    metrics.set_defaults(handler=cmd_backup_metrics)


def cmd_backup_metrics(args: argparse.Namespace) -> int:
    command = args.backup_command[1:] if args.backup_command[:1] == ["--"] else args.backup_command
    if command and args.exit_code is not None:
        raise UserError("give either a command (after --) or --exit-code of a finished run, not both")
    path = backup.textfile_path(args.textfile_dir, args.database)
    if command:
        run, problem = backup.run_backup(args.database, command, args.artifact)
    elif args.exit_code is not None:
        if args.duration is None:
            raise UserError("--exit-code needs --duration (seconds the run took)")
        run, problem = backup.finished_run(args.database, args.exit_code, args.duration, args.artifact), ""
    else:
        raise UserError("give the backup command after --, or --exit-code and --duration of a finished run")
    backup.record(path, run)
    outcome = "succeeded" if run.succeeded else f"failed (exit code {run.exit_code})"
    print(
        f"medobs backup-metrics: backup of {run.database} {outcome} in {run.duration_seconds:.1f}s, "
        f"{run.size_bytes:.0f} bytes; wrote {path}",
        file=sys.stderr,
    )
    if problem:
        raise UserError(problem)
    return run.exit_code if command else 0
