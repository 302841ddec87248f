"""``medobs slo``: build, explain, report and import SLO specs (docs/slo.md)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from medobs import UserError
from medobs.core import durations, scrape_jobs, site
from medobs.core.files import write_atomic
from medobs.core.owned import OwnedFolder
from medobs.core.prometheus import Prometheus
from slo import explain, files, lint, openslo, render, report, spec, windows


def _command(commands: argparse._SubParsersAction, name: str, summary: str, description: str, example: str,
             handler) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description, epilog=f"example: {example}")
    parser.set_defaults(handler=handler)
    return parser


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "slo",
        help="SLOs: compile specs into rules, alerts and tests; explain alerts; report from and lint against Prometheus",
        description=(
            "SLO specs (a superset of Sloth's prometheus/v1 format, see docs/slo.md; Sloth's Kubernetes "
            "PrometheusServiceLevel objects and OpenSLO v1 / v1alpha SLOs are read too, see "
            "docs/slo-formats.md) compiled into "
            "Prometheus recording rules, the SRE Workbook's multi-window multi-burn-rate alerts and "
            "promtool unit tests; explanations of what each alert will do; reports of how each SLO "
            "did over a period, from Prometheus; a check that every SLO query selects series (lint)."
        ),
    )
    commands = group.add_subparsers(dest="slo_command", required=True, metavar="COMMAND", parser_class=type(group))

    build = _command(
        commands, "build", "compile specs into rule files, promtool tests and PrometheusRule objects",
        "Compile SLO specs into OUT/rules/slo-SERVICE.yml (Prometheus rules), OUT/tests/slo-SERVICE-SLO.yml "
        "(promtool unit tests, outside rules/) and, with --kubernetes, OUT/k8s/slo-SERVICE.yaml "
        "(prometheus-operator PrometheusRule). `make build` does this for slo/specs/ into build/. A rerun "
        "removes the files it wrote before that are no longer generated; other files in OUT are never touched.",
        "medobs slo build slo/specs --out /tmp/slo --verify", run_build,
    )
    build.add_argument("specs", nargs="+", type=Path, metavar="SPEC", help="spec files or folders of *.yaml specs")
    build.add_argument(
        "--out", type=Path, required=True,
        help="output folder (created if missing); its .medobs-slo-build.json lists what this command wrote, "
        "and only those files are ever replaced or removed",
    )
    build.add_argument(
        "--force", action="store_true",
        help="take over files already at generated paths that this command did not write (overwriting them)",
    )
    build.add_argument("--kubernetes", action="store_true", help="also write PrometheusRule objects under OUT/k8s/")
    site.add_argument(build)
    build.add_argument(
        "--verify", action="store_true",
        help="then run `promtool check rules` and `promtool test rules` on the output (exit 1 on failure)",
    )

    explain_parser = _command(
        commands, "explain", "what each alert tier of an SLO does: detection time, budget spent, reset time",
        "Per SLO and alert tier: how long a total outage takes to fire it, how much of the error budget is "
        "spent by then (and at exactly the threshold burn rate), how long it keeps firing after the errors "
        "stop, and warnings where a tier can never fire.",
        "medobs slo explain slo/specs/api-gateway.yaml", run_explain,
    )
    explain_parser.add_argument("specs", nargs="+", type=Path, metavar="SPEC", help="spec files or folders")
    explain_parser.add_argument("--slo", help="only the SLO with this name (or SERVICE/NAME)")
    explain_parser.add_argument(
        "--evaluation-interval", default=scrape_jobs.EVALUATION_INTERVAL,
        help=f"Prometheus's rule evaluation interval (default {scrape_jobs.EVALUATION_INTERVAL})",
    )
    explain_parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")

    report_parser = _command(
        commands, "report", "how each SLO did over a period or a calendar month, from Prometheus",
        "Per SLO: the SLI achieved against its objective, good / bad / total events, error budget allowed / "
        "consumed / remaining, burn rate, the alerts that fired (Prometheus's ALERTS) and a verdict (met, "
        "at_risk from 75% of the budget, breached, no_data). The HTML form draws the budget burn-down; the "
        "JSON fields are documented in docs/slo.md. Events of counter SLIs are counted from the counters' "
        "samples: every event Prometheus scraped in the window counts once, nothing is extrapolated.",
        "medobs slo report --prometheus http://127.0.0.1:9090 --month 2026-10 --format html --out report.html",
        run_report,
    )
    report_parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    window = report_parser.add_mutually_exclusive_group()
    window.add_argument("--period", help="the window ending at --end: any duration, like 30d, or 2h15m around an incident "
                        "(default: each SLO's own period)")
    window.add_argument("--month", metavar="YYYY-MM", help="a calendar month (UTC); a month in progress ends now")
    report_parser.add_argument("--end", help="end of a --period window: RFC 3339 or Unix seconds (default now)")
    report_parser.add_argument(
        "--spec", dest="specs", action="append", type=Path, metavar="SPEC",
        help="spec file or folder (repeatable; default: the platform's specs, slo/specs/ of the package)",
    )
    report_parser.add_argument("--format", choices=("json", "md", "html"), default="md", help="output format (default md)")
    report_parser.add_argument("--out", type=Path, help="write the report to this file (default stdout)")
    report_parser.add_argument("--timeout", type=float, default=60.0, help="seconds per Prometheus query (default 60)")

    lint_parser = _command(
        commands, "lint", "check on a Prometheus that every SLO query selects series",
        "For each SLO of the specs, ask Prometheus whether each series selector of its queries selects series "
        "in the last --lookback. A metric or label no series has, or a total query that selects nothing, is an "
        "error naming the SLO and the query (exit 1); an error query whose label values select nothing yet is a "
        "warning (a counter labelled code=\"500\" appears with the first error). All fine: a one-line summary, "
        "exit 0.",
        "medobs slo lint --prometheus http://127.0.0.1:9090 slo/specs", run_lint,
    )
    lint_parser.add_argument("specs", nargs="+", type=Path, metavar="SPEC", help="spec files or folders")
    lint_parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    lint_parser.add_argument("--lookback", default="1d", help="how far back a series counts as existing (default 1d)")
    lint_parser.add_argument("--timeout", type=float, default=30.0, help="seconds per Prometheus request (default 30)")

    importer = _command(
        commands, "import-openslo", "convert OpenSLO v1 / v1alpha SLO objects into a medobs spec",
        "Convert OpenSLO v1 SLO objects (ratioMetric SLIs inline or by indicatorRef, Prometheus sources, "
        "rolling 7d / 28d / 30d windows, Occurrences budgeting) and v1alpha ones (objectives with ratioMetrics, "
        "as Sloth reads them) into a spec for slo/specs/. `slo build` also reads OpenSLO files directly. What "
        "cannot be converted is refused in one line naming the field.",
        "medobs slo import-openslo openslo.yaml --out slo/specs/my-service.yaml", run_import,
    )
    importer.add_argument("file", type=Path, metavar="FILE", help="OpenSLO YAML file")
    importer.add_argument("--out", type=Path, help="write the spec here (default stdout); an existing file needs --force")
    importer.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _load(paths: list[Path]) -> list[spec.Spec]:
    return spec.load_all(paths, Path.cwd())


def _write_text(path: Path, text: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def _promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        raise UserError("--verify needs promtool: apt install prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True)


def run_build(args: argparse.Namespace) -> int:
    specs = _load(args.specs)
    outputs = files.slo_files(specs, "medobs slo build", kubernetes=args.kubernetes)
    OwnedFolder(args.out, "slo build").write(outputs, force=args.force)
    for slo in spec.all_slos(specs):
        for warning in explain.analyse(slo, windows.seconds(scrape_jobs.EVALUATION_INTERVAL)).warnings:
            print(f"warning: {slo.key}: {warning}", file=sys.stderr)
    print(f"{args.out}: {len(outputs)} files for {len(spec.all_slos(specs))} SLOs")
    if not args.verify:
        return 0
    rule_files = sorted(str(args.out / p) for p in outputs if p.startswith("rules/"))
    test_files = sorted(str(args.out / p) for p in outputs if p.startswith("tests/") and not p.startswith("tests/rules/"))
    failed = False
    for result in (_promtool("check", "rules", *rule_files), _promtool("test", "rules", *test_files)):
        if result.returncode != 0:
            failed = True
            print(result.stdout + result.stderr, file=sys.stderr)
    print("promtool: rules " + ("FAILED" if failed else f"valid, {len(test_files)} test files pass"))
    return 1 if failed else 0


def run_explain(args: argparse.Namespace) -> int:
    slos = spec.all_slos(_load(args.specs))
    if args.slo:
        slos = [s for s in slos if args.slo in (s.name, s.key)]
        if not slos:
            raise UserError(f"--slo {args.slo}: no such SLO in the specs given")
    try:
        interval = windows.seconds(args.evaluation_interval)
    except ValueError as error:
        raise UserError(f"--evaluation-interval: {error}") from None
    reports = [explain.analyse(slo, interval) for slo in slos]
    print(explain.render_json(reports) if args.format == "json" else explain.render_text(reports), end="")
    return 0


def run_report(args: argparse.Namespace) -> int:
    slos = spec.all_slos(_load(args.specs) if args.specs else files.platform_specs())
    now = datetime.now(UTC).replace(microsecond=0)
    if args.end and args.month:
        raise UserError("--end goes with --period, not --month")
    end = report.parse_time(args.end) if args.end else now
    data = report.report(slos, Prometheus(args.prometheus, args.timeout), period=args.period, month=args.month, end=end)
    text = {"json": render.as_json, "md": render.markdown, "html": render.html}[args.format](data)
    if args.out:
        _write_text(args.out, text)
        print(f"{args.out}: report of {len(slos)} SLOs")
    else:
        sys.stdout.write(text)
    return 0


def run_lint(args: argparse.Namespace) -> int:
    slos = spec.all_slos(_load(args.specs))
    try:
        lookback = durations.parse(args.lookback)
    except ValueError as error:
        raise UserError(f"--lookback: {error}") from None
    if lookback <= 0:
        raise UserError(f"--lookback {args.lookback}: expected a duration above 0")
    end = time.time()
    linter = lint.Linter(Prometheus(args.prometheus, args.timeout), end - lookback, end, args.lookback)
    result = lint.lint(slos, linter)
    for finding in result.findings:
        print(finding.line())
    print(result.summary())
    return 1 if result.errors else 0


def run_import(args: argparse.Namespace) -> int:
    text, notes = openslo.convert(args.file)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        if args.out.exists() and not args.force:
            raise UserError(f"{args.out} exists: pass --force to overwrite it")
        _write_text(args.out, text)
        print(f"{args.out}: written")
    else:
        sys.stdout.write(text)
    return 0
