"""The report's events: ``increase()`` over the whole window (an estimate, one instant query)
against the events counted step by step from the counters' samples (what ``medobs slo report``
runs, exact), measured side by side on one real Prometheus.

Backfills SERIES request counters (SERIES / 10 targets with ``up``) scraped every 15 s for an
hour before the window and DAYS days in it, then evaluates both forms over the window REPEAT
times and prints the samples each reads (Prometheus's query statistics), the median time, the
ratios, and the events each finds against the events put in.

    .venv/bin/python bench/slo_report_counting.py [--series 100] [--days 1] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slo import promql, report, windows  # noqa: E402
from tests.slo_support import backfilled_prometheus  # noqa: E402 (the tests' throwaway Prometheus)

SCRAPE = 15
START = 1_700_000_000  # the window's start; the counters start an hour before, at 1,000
HISTORY = 3600
PER_SCRAPE = 10.0
QUERY = "sum(rate(http_requests_total[{{.window}}]))"


def openmetrics(series: int, days: int) -> str:
    lines = []
    for moment in range(START - HISTORY, START + days * 86400 + 1, SCRAPE):
        for index in range(series):
            target = f'job="api",instance="pod-{index // 10}:8080"'
            if index % 10 == 0:
                lines.append(f"up{{{target}}} 1 {moment}")
            value = 1000 + PER_SCRAPE * ((moment - START + HISTORY) // SCRAPE)
            lines.append(f'http_requests_total{{{target},uri="/u{index % 10}"}} {value} {moment}')
    lines.sort(key=lambda line: line.split(" ")[0])  # OpenMetrics: a series' samples together, in order
    return "\n".join(lines) + "\n# EOF\n"


def timed(url: str, path: str, params: dict, repeat: int) -> tuple[float, int, float]:
    """(median seconds, samples read, summed values) of a query."""
    times, samples, value = [], 0, 0.0
    for _ in range(repeat):
        began = time.perf_counter()
        answer = requests.get(f"{url}{path}", params={**params, "stats": "all"}, timeout=600).json()
        times.append(time.perf_counter() - began)
        samples = answer["data"].get("stats", {}).get("samples", {}).get("totalQueryableSamples", 0)
        result = answer["data"]["result"]
        value = sum(float(v) for series in result for _, v in series.get("values", [series.get("value")]))
    return statistics.median(times), samples, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100, help="counter series (default 100)")
    parser.add_argument("--days", type=int, default=1, help="window length in days (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="evaluations of each form (default 5)")
    args = parser.parse_args()
    seconds = args.days * 86400
    end, step = START + seconds, report.count_step(seconds)
    put_in = args.series * PER_SCRAPE * seconds / SCRAPE
    estimate = {"query": f"sum(increase(http_requests_total[{args.days}d]))", "time": end}
    counted = {"query": promql.step_events(QUERY, windows.duration(step)), "start": START + step, "end": end, "step": step}
    with tempfile.TemporaryDirectory() as folder, backfilled_prometheus(Path(folder), openmetrics(args.series, args.days)) as url:
        rows = [
            ("increase() over the window", *timed(url, "/api/v1/query", estimate, args.repeat)),
            (f"counted in {step}s steps", *timed(url, "/api/v1/query_range", counted, args.repeat)),
        ]
    print(f"window {args.days}d, {args.series} counters scraped every {SCRAPE}s, {put_in:,.0f} events put in, "
          f"{args.repeat} evaluations each")
    print(f"{'':28}{'samples read':>14}{'median time':>14}{'events found':>16}")
    for name, took, samples, value in rows:
        print(f"{name:28}{samples:>14,}{took * 1000:>12.1f}ms{value:>16,.1f}")
    (_, e_time, e_samples, _), (_, c_time, c_samples, _) = rows
    print(f"ratio counted / increase(): samples {c_samples / max(e_samples, 1):.1f}x, time {c_time / e_time:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
