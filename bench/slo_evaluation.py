"""What the SLO rules cost Prometheus: N SLOs compiled by medobs against the same SLOs as Sloth
generates them, evaluated side by side by one real Prometheus on the same data.

Backfills DAYS days of request counters up to now (PODS pods x two status codes per SLO, scraped
every minute: samples after now would put the recorded ones out of the TSDB's bounds) and of the
series each rule set records and reads back (medobs's 5-minute events, Sloth's 5-minute ratio), loads both rule sets into one Prometheus evaluating every
EVERY seconds, waits for WARMUP seconds, then reads each group's ``evaluationTime`` from
/api/v1/rules ROUNDS times and prints the rule counts, the median evaluation time of each rule set
per round and their ratio (medobs / Sloth; the goal is 1.0 or less). The Sloth rules are written
as Sloth v0.11 writes them (``examples/_gen`` in its repository): 8 SLI recording rules, 7 metadata
rules and 2 alerts per SLO, its ``sloth_id`` prefixed so that neither set reads the other's series.

    .venv/bin/python bench/slo_evaluation.py [--slos 50] [--period 30d] [--days 1] [--pods 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slo import rules, spec, windows  # noqa: E402
from slo.templates import EventsSli  # noqa: E402
from tests.slo_support import promtool, running_prometheus  # noqa: E402 (the tests' throwaway Prometheus)

SCRAPE = 60
SLOTH_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
ERROR = 'sum(rate(http_requests_total{{service="svc-{i}", code=~"5.."}}[{{{{.window}}}}]))'
TOTAL = 'sum(rate(http_requests_total{{service="svc-{i}"}}[{{{{.window}}}}]))'


def slos(count: int, period: str) -> list[spec.SLO]:
    document = {
        "version": "prometheus/v1", "service": "bench", "labels": {"team": "bench"},
        "slos": [
            {"name": f"slo-{i}", "objective": 99.9, "period": period, "alerting": {"name": f"Bench{i}BudgetBurn"},
             "sli": {"events": {"error_query": ERROR.format(i=i), "total_query": TOTAL.format(i=i)}}}
            for i in range(count)
        ],
    }
    return list(spec.parse(document, "bench").slos)


def sloth_groups(slo: spec.SLO) -> list[dict]:
    """The three groups Sloth generates for ``slo`` (its id prefixed with ``sloth-``)."""
    ident = f"sloth-{slo.service}-{slo.name}"
    labels = {**slo.labels, "sloth_id": ident, "sloth_service": slo.service, "sloth_slo": slo.name}
    sel = f'{{sloth_id="{ident}", sloth_service="{slo.service}", sloth_slo="{slo.name}"}}'
    assert isinstance(slo.sli, EventsSli)
    sli = [
        {"record": f"slo:sli_error:ratio_rate{w}",
         "expr": f"({slo.sli.error_query.replace('{{.window}}', w)})\n/\n({slo.sli.total_query.replace('{{.window}}', w)})\n",
         "labels": {**labels, "sloth_window": w}}
        for w in SLOTH_WINDOWS
    ]
    sli.append({
        "record": f"slo:sli_error:ratio_rate{slo.period}",
        "expr": f"sum_over_time(slo:sli_error:ratio_rate5m{sel}[{slo.period}])\n/ ignoring (sloth_window)\n"
                f"count_over_time(slo:sli_error:ratio_rate5m{sel}[{slo.period}])\n",
        "labels": {"sloth_window": slo.period},
    })
    budget = rules.number(slo.budget)
    on = "on(sloth_id, sloth_slo, sloth_service) group_left"
    meta = [
        {"record": "slo:objective:ratio", "expr": f"vector({rules.number(slo.objective_ratio)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1-{rules.number(slo.objective_ratio)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({slo.period_seconds // 86400})", "labels": labels},
        {"record": "slo:current_burn_rate:ratio",
         "expr": f"slo:sli_error:ratio_rate5m{sel}\n/ {on}\nslo:error_budget:ratio{sel}\n", "labels": labels},
        {"record": "slo:period_burn_rate:ratio",
         "expr": f"slo:sli_error:ratio_rate{slo.period}{sel}\n/ {on}\nslo:error_budget:ratio{sel}\n", "labels": labels},
        {"record": "slo:period_error_budget_remaining:ratio", "expr": f"1 - slo:period_burn_rate:ratio{sel}", "labels": labels},
        {"record": "sloth_slo_info", "expr": "vector(1)",
         "labels": {**labels, "sloth_mode": "cli-gen-prom", "sloth_spec": "prometheus/v1", "sloth_version": "v0.11.0"}},
    ]

    def condition(tier: windows.Tier) -> str:
        threshold = f"({rules.number(tier.factor)} * {budget})"
        return (f"(\n    (slo:sli_error:ratio_rate{tier.short}{sel} > {threshold})\n    and ignoring (sloth_window)\n"
                f"    (slo:sli_error:ratio_rate{tier.long}{sel} > {threshold})\n)")

    tiers = windows.tiers(slo.period)
    alerts = [
        {"alert": f"Sloth{slo.alerting.name}", "expr": "\nor ignoring (sloth_window)\n".join(
            condition(t) for t in tiers if t.kind == kind),
         "labels": {"sloth_severity": kind}, "annotations": {"summary": f"{slo.name} {kind}"}}
        for kind in ("page", "ticket")
    ]
    return [
        {"name": f"sloth-slo-sli-recordings-{ident}", "rules": sli},
        {"name": f"sloth-slo-meta-recordings-{ident}", "rules": meta},
        {"name": f"sloth-slo-alerts-{ident}", "rules": alerts},
    ]


def _series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def openmetrics(compiled: list[spec.SLO], days: int, pods: int, end: int) -> str:
    """Counters of every SLO's service (``pods`` pods x two codes, 600 requests a minute, 0.1% errors)
    and the history of the series each rule set records and reads back over days (medobs: the
    5-minute events; Sloth: the 5-minute ratio), as if both had run all along."""
    steps = days * 86400 // SCRAPE
    start = end - steps * SCRAPE
    lines = []
    for i, slo in enumerate(compiled):
        for pod in range(pods):
            for code, per_minute in (("200", 599.4 / pods), ("500", 0.6 / pods)):
                name = f'http_requests_total{{service="svc-{i}",pod="svc-{i}-{pod}",code="{code}"}}'
                lines += [f"{name} {per_minute * step:.3f} {start + step * SCRAPE}" for step in range(steps + 1)]
        ours = rules.identity_labels(slo)
        sloth = {**slo.labels, "sloth_id": f"sloth-{slo.service}-{slo.name}", "sloth_service": slo.service,
                 "sloth_slo": slo.name, "sloth_window": "5m"}
        for name, value in ((_series("slo:sli_error_events:rate5m", ours), 0.01),
                            (_series("slo:sli_total_events:rate5m", ours), 10.0),
                            (_series("slo:sli_error:ratio_rate5m", sloth), 0.001)):
            lines += [f"{name} {value} {start + step * SCRAPE}" for step in range(5, steps + 1)]
    return "\n".join(lines) + "\n# EOF\n"


def evaluation_times(url: str) -> tuple[float, float]:
    """Seconds the last evaluation of all medobs groups and of all Sloth groups took."""
    groups = requests.get(f"{url}/api/v1/rules", timeout=30).json()["data"]["groups"]
    ours = sum(g["evaluationTime"] for g in groups if not g["name"].startswith("sloth-"))
    sloth = sum(g["evaluationTime"] for g in groups if g["name"].startswith("sloth-"))
    return ours, sloth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slos", type=int, default=50)
    parser.add_argument("--period", choices=windows.PERIODS, default="30d")
    parser.add_argument("--days", type=int, default=1, help="days of backfilled counters (default 1)")
    parser.add_argument("--pods", type=int, default=2, help="pods behind each SLI, each with two series (default 2)")
    parser.add_argument("--every", type=int, default=10, help="evaluation interval in seconds (default 10)")
    parser.add_argument("--warmup", type=int, default=40, help="seconds before measuring (default 40)")
    parser.add_argument("--rounds", type=int, default=6, help="evaluations measured (default 6)")
    args = parser.parse_args()
    compiled = slos(args.slos, args.period)
    ours = rules.rule_file(compiled)
    sloth = {"groups": [g for slo in compiled for g in sloth_groups(slo)]}
    for name, rule_set in (("medobs", ours), ("Sloth", sloth)):
        found = [r for g in rule_set["groups"] for r in g["rules"]]
        print(f"{name:>7}: {sum('record' in r for r in found)} recording rules, "
              f"{sum('alert' in r for r in found)} alerting rules for {args.slos} SLOs at {args.period}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "data.om").write_text(openmetrics(compiled, args.days, args.pods, int(time.time())))
        backfill = promtool("tsdb", "create-blocks-from", "openmetrics", str(root / "data.om"), str(root / "tsdb"))
        assert backfill.returncode == 0, backfill.stderr
        (root / "ours.yml").write_text(yaml.safe_dump(ours, sort_keys=False))
        (root / "sloth.yml").write_text(yaml.safe_dump(sloth, sort_keys=False))
        config = yaml.safe_dump({"global": {"evaluation_interval": f"{args.every}s"},
                                 "rule_files": [str(root / "ours.yml"), str(root / "sloth.yml")]})
        with running_prometheus(root, config, "--storage.tsdb.retention.time=100y") as url:
            time.sleep(args.warmup)
            samples = []
            for _ in range(args.rounds):
                samples.append(evaluation_times(url))
                time.sleep(args.every)
            groups = requests.get(f"{url}/api/v1/rules", timeout=30).json()["data"]["groups"]
            errors = [(g["name"], r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    ours_s = statistics.median(s[0] for s in samples)
    sloth_s = statistics.median(s[1] for s in samples)
    print(f"evaluation per round (median of {args.rounds}): medobs {ours_s * 1000:.1f} ms, Sloth {sloth_s * 1000:.1f} ms, "
          f"ratio {ours_s / sloth_s:.2f} (goal <= 1.0); rules not ok: {len(errors)} {errors[:3]}")


if __name__ == "__main__":
    main()
