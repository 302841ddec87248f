"""``medobs rules``: list, check and test the alert rules and routing.

Part of the assembly: ``check`` and ``test`` work on a fresh rendering of everything
``medobs build`` writes (alert and SLO rules, Alertmanager configurations).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from alerts import DOMAINS, alertmanager, alerts_by_domain, checks
from medobs import UserError
from medobs import build as medobs_build
from medobs.core import site

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

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rules``."""
    rules = subparsers.add_parser(
        "rules", help="list, check and test the alert rules and Alertmanager routing",
        description=RULES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="every alert with its domain, severity, for and summary")
    listing.set_defaults(handler=cmd_list)
    site.add_argument(listing)
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
        site.add_argument(command)
        command.set_defaults(handler=handler)


def cmd_list(args: argparse.Namespace) -> int:
    rows = [["ALERT", "DOMAIN", "SEVERITY", "FOR", "SUMMARY"]]
    for domain, alerts in alerts_by_domain().items():
        seen = set()
        for alert in alerts:
            if alert.name not in seen:
                seen.add(alert.name)
                rows.append([alert.name, domain, alert.severity, alert.for_, alert.summary])
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
