"""How fast ``medobs slo build`` compiles: N SLOs from spec files to rule files and promtool tests.

Writes N SLOs (ten per service, cycling through the availability and latency templates, events
and raw queries, and the 7d / 28d / 30d periods) as spec files, then, in a fresh process per size,
loads them and generates every file ``medobs slo build`` writes (rules, promtool tests,
PrometheusRule objects) without writing them. Prints seconds, peak memory (RSS) and the rules per
SLO for each size, against the goals (50 SLOs in 3 s; 1,000 in 30 s and 500 MB).

    .venv/bin/python bench/slo_compile.py [--sizes 50 1000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOALS = {50: (3.0, None), 1000: (30.0, 500.0)}
PER_SERVICE = 10
SLIS = (
    """      availability:
        metric: http_server_requests_seconds
        filter: 'job="svc-{i}"'
        status_label: status
        bad: "5.."
""",
    """      latency:
        metric: http_server_requests_seconds
        filter: 'job="svc-{i}"'
        threshold: 1
""",
    """      events:
        error_query: sum(rate(http_requests_total{{service="svc-{i}", code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate(http_requests_total{{service="svc-{i}"}}[{{{{.window}}}}]))
""",
    """      raw:
        error_ratio_query: sum(rate(http_requests_total{{service="svc-{i}", code=~"5.."}}[{{{{.window}}}}])) / sum(rate(http_requests_total{{service="svc-{i}"}}[{{{{.window}}}}]))
""",
)
PERIODS = ("30d", "28d", "7d")


def write_specs(folder: Path, count: int) -> None:
    """``count`` SLOs, ten per service file."""
    for first in range(0, count, PER_SERVICE):
        lines = ["version: prometheus/v1", f"service: bench-{first // PER_SERVICE}", "labels: {team: bench}", "slos:"]
        for i in range(first, min(count, first + PER_SERVICE)):
            lines += [
                f"  - name: slo-{i}", f"    objective: {99.9 if i % 2 else 99.5}", f"    period: {PERIODS[i % 3]}",
                "    sli:", SLIS[i % len(SLIS)].format(i=i).rstrip("\n"),
                "    alerting:", f"      name: Bench{i}BudgetBurn",
            ]
        (folder / f"bench-{first // PER_SERVICE}.yaml").write_text("\n".join(lines) + "\n")


def child(folder: Path) -> None:
    """Compile the specs in ``folder`` and print what it took, as JSON."""
    from slo import files, spec

    began = time.perf_counter()
    specs = spec.load_all([folder])
    outputs = files.slo_files(specs, "medobs slo build", kubernetes=True)
    seconds = time.perf_counter() - began
    slos = spec.all_slos(specs)
    rule_files = [text for path, text in outputs.items() if path.startswith("rules/")]
    records = sum(text.count("\n  - record: ") for text in rule_files)
    alerts = sum(text.count("\n  - alert: ") for text in rule_files)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"slos": len(slos), "seconds": seconds, "peak_mb": peak_mb, "files": len(outputs),
                      "records_per_slo": records / len(slos), "alerts_per_slo": alerts / len(slos)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 1000])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"{'SLOs':>6} {'seconds':>8} {'goal':>6} {'peak MB':>8} {'goal':>6} {'files':>6} {'records/SLO':>12} {'alerts/SLO':>11}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            write_specs(Path(folder), size)
            result = subprocess.run([sys.executable, __file__, "--child", folder], capture_output=True, text=True, check=True)
        found = json.loads(result.stdout)
        seconds_goal, memory_goal = GOALS.get(size, (None, None))
        print(f"{found['slos']:>6} {found['seconds']:>8.2f} {seconds_goal or '-':>6} {found['peak_mb']:>8.0f} "
              f"{memory_goal or '-':>6} {found['files']:>6} {found['records_per_slo']:>12.2f} {found['alerts_per_slo']:>11.2f}")


if __name__ == "__main__":
    main()
