"""What the whole local stack costs on this machine, measured in one run.

Starts ``medobs stack up`` at the platform's 15 s scrape interval in its own state folder, port
offset, RabbitMQ vhost and PostgreSQL database (removed afterwards), then:

1. how long ``up`` takes until Prometheus has scraped every target;
2. each component's CPU (% of one core) and resident memory over ``--seconds`` of the healthy
   scenario, and its share of the whole stack's CPU;
3. the time to answer one scrape of each simulated endpoint, side by side with the gateway's
   ``/actuator/prometheus`` (median of ``--scrapes``), and the size of each exposition.

    .venv/bin/python bench/stack.py                # 60 s of CPU measurement
    .venv/bin/python bench/stack.py --seconds 120
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medobs import stack  # noqa: E402
from medobs.core import scrape_jobs
from tests.conftest import StackUnderTest  # noqa: E402  (conftest first, as pytest loads them)

PORT_OFFSET = 14000  # clear of the tests' stacks (13000, 21000, 22000)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def component_costs(under_test: StackUnderTest, seconds: float) -> None:
    processes = {comp.name: stack.running_process(under_test.stack, comp) for comp in stack.COMPONENTS}
    before = {name: cpu_seconds(p) for name, p in processes.items()}
    started = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - started
    used = {name: cpu_seconds(p) - before[name] for name, p in processes.items()}
    total = sum(used.values())
    print(f"\nCPU and memory over {wall:.0f} s of the healthy scenario")
    print(f"{'component':<20} {'CPU % of a core':>15} {'share':>6} {'RSS MiB':>8}")
    for name, process in processes.items():
        print(f"{name:<20} {100 * used[name] / wall:>15.1f} {used[name] / total:>6.0%} "
              f"{process.memory_info().rss / 2**20:>8.0f}")
    print(f"{'whole stack':<20} {100 * total / wall:>15.1f} {1:>6.0%}")


def scrape_costs(under_test: StackUnderTest, scrapes: int) -> None:
    endpoints = {
        "api-gateway": under_test.stack.url("api-gateway") + scrape_jobs.job("api-gateway").metrics_path,
        "cadvisor": under_test.stack.url("cadvisor") + scrape_jobs.job("cadvisor").metrics_path,
        "kube-state-metrics": under_test.stack.url("kube-state-metrics") + "/metrics",
        "cert-manager": under_test.stack.url("cert-manager") + "/metrics",
    }
    session = requests.Session()
    timings: dict[str, list[float]] = {name: [] for name in endpoints}
    sizes = {}
    for _ in range(scrapes):  # interleaved, so that the machine's load hits every endpoint alike
        for name, url in endpoints.items():
            started = time.perf_counter()
            answer = session.get(url, timeout=10)
            timings[name].append(time.perf_counter() - started)
            sizes[name] = (len(answer.content), answer.text.count("\n") - answer.text.count("\n#"))
    baseline = statistics.median(timings["api-gateway"])
    print(f"\none scrape, median of {scrapes} (side by side with the gateway's /actuator/prometheus)")
    print(f"{'job':<20} {'ms':>6} {'vs gateway':>10} {'samples':>8} {'kB':>6}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:<20} {1000 * median:>6.2f} {median / baseline:>9.2f}x {sizes[name][1]:>8} "
              f"{sizes[name][0] / 1024:>6.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the CPU measurement (default: 60)")
    parser.add_argument("--scrapes", type=int, default=50, help="scrapes of each endpoint (default: 50)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        under_test = StackUnderTest(Path(state) / "state", port_offset=PORT_OFFSET)
        try:
            started = time.monotonic()
            under_test.up("--wait", "120")
            print(f"`medobs stack up` until every target was scraped: {time.monotonic() - started:.1f} s "
                  f"(scrape interval {scrape_jobs.SCRAPE_INTERVAL})")
            component_costs(under_test, args.seconds)
            scrape_costs(under_test, args.scrapes)
        finally:
            under_test.down()
            under_test.remove_backends()
    return 0


if __name__ == "__main__":
    sys.exit(main())
