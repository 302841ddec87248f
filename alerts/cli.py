"""``medobs rules`` (list, check and test the alert rules and routing) and ``medobs backup-metrics``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medobs import UserError
from medobs import build as medobs_build
from medobs.alerts import DOMAINS, alertmanager, alerts_by_domain, backup, checks

RULES_HELP = """\
List, check and test the alert rules and the Alertmanager routing.

`check` and `test` work on a fresh rendering of the current definitions (what `medobs build`
would write), or on an existing build folder with --build-dir:
  check  promtool check rules on every prometheus/rules/*.yml (alerts and SLO rules),
         amtool check-config on every alertmanager/*.yml
  test   promtool test rules on every prometheus/tests/*.yml (each alert fires on a realistic
         failure and stays silent on healthy and borderline series), and the documented
         `amtool config routes test` cases on every Alertmanager configuration
"""

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
    """Register ``rules`` and ``backup-metrics``."""
    rules = subparsers.add_parser(
        "rules", help="list, check and test the alert rules and Alertmanager routing",
        description=RULES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every alert with its domain, severity, for and summary")
    listing.add_argument(
        "--format", choices=("table", "markdown"), default="table", help="output format (default: %(default)s)"
    )
    listing.set_defaults(handler=cmd_list)
    for name, handler, text in (
        ("check", cmd_check, "promtool check rules and amtool check-config on the built files"),
        ("test", cmd_test, "promtool unit tests of every alert and the amtool route cases"),
    ):
        command = commands.add_parser(name, help=text, description=RULES_HELP,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_argument(
            "--build-dir", type=Path,
            help="check an existing build folder instead of a fresh rendering of the definitions",
        )
        command.set_defaults(handler=handler)

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


# --- rules -----------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    rows = [["ALERT", "DOMAIN", "SEVERITY", "FOR", "SUMMARY"]]
    for domain, alerts in alerts_by_domain().items():
        seen = set()
        for alert in alerts:
            if alert.name not in seen:
                seen.add(alert.name)
                rows.append([alert.name, domain, alert.severity, alert.for_, alert.summary])
    if args.format == "markdown":
        print(f"| {' | '.join(h.lower() for h in rows[0])} |")
        print("|" + "---|" * len(rows[0]))
        for row in rows[1:]:
            print(f"| [{row[0]}](runbooks/{row[0]}.md) | {' | '.join(row[1:])} |")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


@contextlib.contextmanager
def built(build_dir: Path | None) -> Iterator[Path]:
    """An existing build folder, or a fresh rendering of every generator in a temporary one."""
    if build_dir is not None:
        if not (build_dir / "prometheus" / "rules").is_dir():
            raise UserError(f"--build-dir {build_dir} has no prometheus/rules/: run `medobs build --out {build_dir}`")
        yield build_dir
        return
    with tempfile.TemporaryDirectory(prefix="medobs-rules-") as folder:
        medobs_build.write(Path(folder), medobs_build.generate())
        yield Path(folder)


def _report(result) -> bool:
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    return result.returncode == 0


def cmd_check(args: argparse.Namespace) -> int:
    with built(args.build_dir) as root:
        rules = sorted((root / "prometheus" / "rules").glob("*.yml"))
        configs = sorted((root / "alertmanager").glob("*.yml"))
        ok = _report(checks.check_rules(rules))
        ok = _report(checks.check_config(configs)) and ok
    return 0 if ok else 1


def cmd_test(args: argparse.Namespace) -> int:
    with built(args.build_dir) as root:
        tests = sorted((root / "prometheus" / "tests").glob("*.yml"))
        if len(tests) < len(DOMAINS):
            raise UserError(f"{root / 'prometheus' / 'tests'} holds {len(tests)} test files, expected one per domain")
        ok = _report(checks.test_rules(tests))
        configs = sorted((root / "alertmanager").glob("*.yml"))
        failures = [line for config in configs for line in checks.route_failures(config, alertmanager.ROUTE_CASES)]
    for line in failures:
        print(f"route FAILED: {line}")
    cases = len(alertmanager.ROUTE_CASES) * len(configs)
    print(f"Alertmanager routes: {cases - len(failures)} of {cases} cases as documented")
    return 0 if ok and not failures else 1


# --- backup-metrics --------------------------------------------------------------------------


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
