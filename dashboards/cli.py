"""``medobs dashboards lint | check | publish``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dashboards import check, lint, publish
from dashboards.model import load
from dashboards.provisioning import FOLDER_TITLE, FOLDER_UID

_STATUS_WORDS = {"ok": "ok", "empty": "EMPTY", "no-gpu": "NO GPU"}


def cmd_lint(args: argparse.Namespace) -> int:
    boards = load(args.dashboards)
    violations = [v for board in boards for v in lint.lint(board)]
    for violation in violations:
        print(violation)
    print(f"{len(boards)} dashboards, {len(violations)} violations")
    return 1 if violations else 0


def _explained(reasons: list[check.Reason]) -> str:
    """A panel's reasons on one line, the queries with the same reasons named together."""
    by_query: dict[str, list[str]] = {}
    for reason in reasons:
        by_query.setdefault(reason.query, []).append(reason.message)
    together: dict[tuple[str, ...], list[str]] = {}
    for query, messages in by_query.items():
        together.setdefault(tuple(messages), []).append(query)
    return "; ".join(
        f"{'query' if len(names) == 1 else 'queries'} {', '.join(names)}: {'; '.join(messages)}"
        for messages, names in together.items()
    )


def cmd_check(args: argparse.Namespace) -> int:
    boards = load(args.dashboards)
    window = check.window_of(args.range, args.rate_interval)
    prometheus = check.Prometheus(args.prometheus, args.timeout)
    results = check.check(boards, prometheus, window, args.expect_gpu)
    counts = check.summary(results)
    if args.format == "json":
        print(json.dumps(check.as_json(results, args.prometheus, window), indent=2))
    else:
        for result in results:
            reasons = _explained(result.reasons)
            line = f"{_STATUS_WORDS[result.status]:<7} {result.dashboard} / {result.panel}"
            print(f"{line}: {reasons}" if reasons else line)
        print(
            f"{counts['panels']} panels on {len(boards)} dashboards: {counts['ok']} with data, "
            f"{counts['empty']} empty, {counts['no-gpu']} GPU panels without a GPU"
        )
    return 1 if counts["empty"] else 0


def cmd_publish(args: argparse.Namespace) -> int:
    boards = load(args.dashboards)
    grafana = publish.connect(args.grafana_url, args.retries)
    options = publish.Options(
        folder_uid=args.folder_uid, folder_title=args.folder_title, message=args.message,
        dry_run=args.dry_run, prune=args.prune,
    )
    return publish.publish(grafana, boards, options)


def _dashboards_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dashboards", nargs="*", type=Path, metavar="DASHBOARD",
        help="dashboard JSON files or folders of them (default: the package's, rendered as `medobs build` does)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboards",
        help="lint, check against Prometheus, and publish the Grafana dashboards",
        description=(
            "The package's Grafana dashboards (rendered from dashboards/, as `medobs build` writes them into "
            "grafana/dashboards/), or the JSON files named: lint them, check that every panel shows data in a "
            "Prometheus, publish them to Grafana."
        ),
    )
    commands = parser.add_subparsers(dest="dashboards_command", required=True, metavar="COMMAND")

    linter = commands.add_parser(
        "lint", help="grafana dashboard-linter's rules over the dashboard JSON (exit 1 on a violation)",
        description=(
            "Check the dashboards against grafana dashboard-linter's rules: a datasource variable used by every "
            "panel, job / instance (or namespace / pod, service / slo) variables and matchers, $__rate_interval "
            "in rate / irate / increase, counters only inside them, metrics from the catalog, a unit and a "
            "description on every panel, stable uids, tags, not editable. One line per violation; exit 1 if any."
        ),
    )
    _dashboards_argument(linter)
    linter.set_defaults(handler=cmd_lint)

    checker = commands.add_parser(
        "check", help="run every panel's queries against a Prometheus and explain the empty ones",
        description=(
            "Run every panel's queries against PROMETHEUS over the last --range, with the dashboard variables set "
            "to all their values in that Prometheus. Every query of a panel must return data: each query without "
            "data is reported with the reason (a metric absent, labels that match no series and the values that "
            "exist, a variable without values, or an expression that drops every series) and makes the panel "
            "empty. GPU panels on machines without a GPU are reported as such and do not count as failures, "
            "unless --expect-gpu. Exit 1 when a panel is empty."
        ),
    )
    _dashboards_argument(checker)
    checker.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    checker.add_argument("--range", default="1h", help="window the panels are checked over (default: %(default)s)")
    checker.add_argument(
        "--rate-interval", default="1m",
        help="value of $__rate_interval: at least four scrape intervals (default: %(default)s)",
    )
    checker.add_argument("--timeout", type=float, default=30.0, help="seconds per Prometheus request (default: %(default)s)")
    checker.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: %(default)s)")
    checker.add_argument(
        "--expect-gpu", action="store_true",
        help="this Prometheus should have GPU data: GPU panels without it are empty (a failure), not \"no GPU\"",
    )
    checker.set_defaults(handler=cmd_check)

    publisher = commands.add_parser(
        "publish", help="publish the dashboards to Grafana ($GRAFANA_URL, $GRAFANA_TOKEN)",
        description=(
            "Publish the dashboards to the Grafana at $GRAFANA_URL with the service-account token in $GRAFANA_TOKEN "
            "(or the file named by $GRAFANA_TOKEN_FILE; it is never printed). Creates the folder if missing, saves "
            "each dashboard whose content or folder changed (with a change message) and leaves the others alone, "
            "retries connection errors, 5xx and 429 answers with backoff or after their Retry-After (60s of waiting at most)."
        ),
    )
    _dashboards_argument(publisher)
    publisher.add_argument(
        "--grafana-url", default=os.environ.get("GRAFANA_URL"), help="Grafana base URL (default: $GRAFANA_URL)"
    )
    publisher.add_argument("--folder-uid", default=FOLDER_UID, help="uid of the folder (default: %(default)s)")
    publisher.add_argument("--folder-title", default=FOLDER_TITLE, help="title if it is created (default: %(default)s)")
    publisher.add_argument("--message", default=publish.default_message(), help="change message in the version history")
    publisher.add_argument("--dry-run", action="store_true", help="change nothing; print what would change, as a diff")
    publisher.add_argument(
        "--prune", action="store_true",
        help="also delete managed dashboards (tag medobs, uid medobs-*) that are no longer defined",
    )
    publisher.add_argument(
        "--retries", type=int, default=publish.DEFAULT_RETRIES,
        help="retries of a request after a connection error, a 5xx or a 429, with doubling backoff (default: %(default)s)",
    )
    publisher.set_defaults(handler=cmd_publish)
