"""The SLO period rule: raw ``rate(...[period])`` over every SLI series, against the sum of the
recorded 5-minute events (what medobs generates), measured side by side on one real Prometheus.

Backfills SERIES request counters scraped every 15 s for DAYS days and the two recorded 5-minute
event series evaluated every 15 s, then evaluates both forms of the period's error ratio REPEAT
times at the end and prints the samples each reads (Prometheus's query statistics), the median
time, the ratios, and the two results (which agree).

    .venv/bin/python bench/slo_period_rule.py [--series 100] [--days 1] [--repeat 20]
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
from tests.slo_support import backfilled_prometheus  # noqa: E402 (the tests' throwaway Prometheus)

SCRAPE = 15
START = 1_700_000_000


def openmetrics(series: int, days: int) -> str:
    """Counters of ``series`` pods x statuses, 1 request in 1,000 a 500; and the recorded
    ``slo:sli_{error,total}_events:rate5m`` computed from them."""
    steps = days * 86400 // SCRAPE
    window = 300 // SCRAPE
    lines, bad_sum, all_sum = [], [0.0] * (steps + 1), [0.0] * (steps + 1)
    for index in range(series):
        status = "500" if index % 10 == 0 else "200"
        per_step = 0.1 if status == "500" else 10.0
        name = f'http_requests_total{{pod="p{index // 10}",status="{status}",uri="/u{index % 10}"}}'
        for step in range(steps + 1):
            lines.append(f"{name} {per_step * step} {START + step * SCRAPE}")
            target = bad_sum if status == "500" else None
            if target is not None:
                target[step] += per_step * step
            all_sum[step] += per_step * step
    labels = 'service="bench",slo="availability"'
    for record, totals in (("slo:sli_error_events:rate5m", bad_sum), ("slo:sli_total_events:rate5m", all_sum)):
        for step in range(window, steps + 1):
            rate = (totals[step] - totals[step - window]) / 300
            lines.append(f"{record}{{{labels}}} {rate} {START + step * SCRAPE}")
    return "\n".join(lines) + "\n# EOF\n"


def measure(url: str, query: str, at: int, repeat: int) -> tuple[float, int, float]:
    """(median seconds, samples read, value) of an instant query."""
    times, samples, value = [], 0, float("nan")
    for _ in range(repeat):
        began = time.perf_counter()
        answer = requests.get(f"{url}/api/v1/query", params={"query": query, "time": at, "stats": "all"}, timeout=600).json()
        times.append(time.perf_counter() - began)
        samples = answer["data"].get("stats", {}).get("samples", {}).get("totalQueryableSamples", 0)
        value = float(answer["data"]["result"][0]["value"][1])
    return statistics.median(times), samples, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100, help="raw SLI series (default 100)")
    parser.add_argument("--days", type=int, default=1, help="period length in days (default 1)")
    parser.add_argument("--repeat", type=int, default=20, help="evaluations of each query (default 20)")
    args = parser.parse_args()
    at, period = START + args.days * 86400, f"{args.days}d"
    raw = f'sum(rate(http_requests_total{{status=~"5.."}}[{period}])) / sum(rate(http_requests_total[{period}]))'
    sel = '{service="bench",slo="availability"}'
    recorded = (f"sum_over_time(slo:sli_error_events:rate5m{sel}[{period}]) / "
                f"sum_over_time(slo:sli_total_events:rate5m{sel}[{period}])")
    with tempfile.TemporaryDirectory() as folder, backfilled_prometheus(Path(folder), openmetrics(args.series, args.days)) as url:
        raw_time, raw_samples, raw_value = measure(url, raw, at, args.repeat)
        rec_time, rec_samples, rec_value = measure(url, recorded, at, args.repeat)
    print(f"period {period}, {args.series} raw series scraped every {SCRAPE}s, {args.repeat} evaluations each")
    print(f"{'':28}{'samples read':>14}{'median time':>14}{'error ratio':>14}")
    print(f"{'raw rate() over the period':28}{raw_samples:>14,}{raw_time * 1000:>12.2f}ms{raw_value:>14.6f}")
    print(f"{'sum of recorded 5m events':28}{rec_samples:>14,}{rec_time * 1000:>12.2f}ms{rec_value:>14.6f}")
    print(f"ratio raw / recorded: samples {raw_samples / max(rec_samples, 1):.1f}x, time {raw_time / rec_time:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
