"""What the platform simulator costs, and what each scenario produces, measured in one run.

The simulator runs in this process (its own RabbitMQ vhost and PostgreSQL database, removed
afterwards, ephemeral ports), so its CPU time is this process's.

1. Cost: CPU share of one core and resident memory at request rates 0 (idle), 10 (the
   default) and 40, side by side, with the ratio of each to idle; target: the default healthy
   scenario under 10 % of one core, so it can run all day in the local stack of a 2-core machine.
2. Scenarios at the default 10 requests/s: for each, after a warm-up, the figures the
   dashboards and alerts see over ``--seconds``: gateway requests/s, 5xx share, share of
   requests within 0.5 s, growth of medical_data and of its DLQ per minute (rabbitmqctl),
   TF Serving's successful predicts/s, and the study-service pool at the end.

    .venv/bin/python bench/simulator.py                 # 20 s per measurement
    .venv/bin/python bench/simulator.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medobs.core.catalog import gateway, tfserving  # noqa: E402
from medobs.simulator.broker import DEAD_LETTER_QUEUE, QUEUE  # noqa: E402
from medobs.simulator.scenarios import SCENARIOS, Knobs  # noqa: E402
from tests.simulator_support import (  # noqa: E402
    GUEST,
    MANAGEMENT,
    running_platform,
    sample_sum,
    scrape,
)

WARM_UP = 5.0


def depths(vhost: str) -> dict[str, int]:
    out = subprocess.run(["rabbitmqctl", "list_queues", "-q", "-p", vhost, "--formatter", "json", "name", "messages"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return {q["name"]: q["messages"] for q in json.loads(out)}


def purge(vhost: str) -> None:
    for name in (QUEUE, DEAD_LETTER_QUEUE):
        requests.delete(f"{MANAGEMENT}/api/queues/{quote(vhost, safe='')}/{name}/contents", auth=GUEST, timeout=10)


def cost(platform, seconds: float) -> None:
    process = psutil.Process()
    print(f"cost ({seconds:.0f} s each)\n{'requests/s':>10}  {'CPU % of a core':>15}  {'vs idle':>7}  "
          f"{'CPU ms/request':>14}  {'RSS MiB':>7}")
    idle = None
    for rate in (0, 10, 40):
        platform.apply("healthy", Knobs(request_rate=rate))
        time.sleep(WARM_UP)
        cpu, wall, sent = sum(process.cpu_times()[:2]), time.monotonic(), sum(platform.traffic.statuses.values())
        time.sleep(seconds)
        cpu = sum(process.cpu_times()[:2]) - cpu
        wall, sent = time.monotonic() - wall, sum(platform.traffic.statuses.values()) - sent
        share = 100 * cpu / wall
        idle = share if idle is None else idle
        per_request = f"{1000 * cpu / sent:.2f}" if sent else "-"
        print(f"{rate:>10}  {share:>15.1f}  {share / idle:>6.1f}x  {per_request:>14}  "
              f"{process.memory_info().rss / 2**20:>7.0f}")


def scenarios(platform, seconds: float) -> None:
    vhost = platform.config.broker.vhost
    actuator = platform.urls["gateway"] + "/actuator/prometheus"
    tf = platform.urls["tfserving"] + "/monitoring/prometheus/metrics"
    http = gateway.HTTP_SERVER_REQUESTS
    print(f"\nscenarios at 10 requests/s ({seconds:.0f} s each after {WARM_UP:.0f} s)")
    print(f"{'scenario':<20} {'req/s':>6} {'5xx':>6} {'<=0.5s':>7} {'queue/min':>9} {'DLQ/min':>8} "
          f"{'TF ok/s':>7} {'pool active/pending/timeouts':>28}")
    for item in SCENARIOS.values():
        purge(vhost)
        platform.apply(item.name, item.knobs)
        time.sleep(WARM_UP)
        before, tf_before, queues_before, started = scrape(actuator), scrape(tf), depths(vhost), time.monotonic()
        time.sleep(seconds)
        after, tf_after, queues_after = scrape(actuator), scrape(tf), depths(vhost)
        minutes = (time.monotonic() - started) / 60

        def delta(found_after, found_before, sample, **labels):
            return sample_sum(found_after, sample, **labels) - sample_sum(found_before, sample, **labels)

        total = delta(after, before, http.count)
        errors = delta(after, before, http.count, outcome="SERVER_ERROR")
        fast = delta(after, before, http.bucket, le=gateway.micrometer_le(0.5))
        # prometheus_client's parser names counter samples *_total, whatever TF Serving writes
        ok = delta(tf_after, tf_before, f"{tfserving.REQUEST_COUNT.name}_total", status="OK")
        pool = "/".join(f"{sample_sum(after, entry.name, application='study-service'):.0f}"
                        for entry in (gateway.HIKARI_ACTIVE, gateway.HIKARI_PENDING, gateway.HIKARI_TIMEOUTS))
        queue, dlq = ((queues_after[name] - queues_before[name]) / minutes for name in (QUEUE, DEAD_LETTER_QUEUE))
        print(f"{item.name:<20} {total / minutes / 60:>6.1f} {errors / max(total, 1):>6.1%} "
              f"{fast / max(total, 1):>7.1%} {queue:>+9.0f} {dlq:>+8.0f} {ok / minutes / 60:>7.1f} {pool:>28}")
    platform.apply("healthy", Knobs())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measurement (default: 20)")
    args = parser.parse_args()
    with running_platform(Knobs(request_rate=0), seed=0) as platform:
        cost(platform, args.seconds)
        scenarios(platform, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
