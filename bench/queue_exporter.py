"""Benchmark: the queue exporter at 200, 2,000 and 10,000 queues, side by side with what it competes against.

For each size, creates a private vhost on the local broker (a tenth of the queues DLQs, the rest
work queues dead-lettering into them through a direct exchange, a message in every fourth), starts
``medobs exporter queue`` as a separate process with its defaults, and times in interleaved rounds:

- a scrape of the exporter's /metrics as Prometheus makes it (gzip accepted; topology and details
  cached), and the same scrape uncompressed (what gzip costs);
- a bare paged fetch of the management API's queue listing, stats off, totals on (500 a page);
- the broker's own ``/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count``;

and, once, the broker's CPU time (the beam.smp process) for one read of the queue listing as the
topology reads it (unpaged) against the paged listing. Prints the medians, the ratios against the
targets (scrape <= 0.5x the listing at every size; <= 3x the broker's endpoint at 2,000, the
stretch goal; peak RSS <= 60 MB at 10,000), and deletes each vhost, and with it its queues,
whatever happens.

    .venv/bin/python bench/queue_exporter.py [--sizes 200,2000,10000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pika
import psutil
import requests

MANAGEMENT = "http://127.0.0.1:15672"
PLUGIN = "http://127.0.0.1:15692"
AUTH = ("guest", "guest")
REPO = Path(__file__).resolve().parent.parent
LISTING = "disable_stats=true&enable_queue_totals=true"
BROKER_ENDPOINT = f"{PLUGIN}/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def bench_vhost(session: requests.Session, total: int) -> Iterator[str]:
    """A vhost holding ``total`` queues, deleted (with them) afterwards."""
    vhost = f"medobs-bench-{uuid.uuid4().hex[:8]}"
    quoted = quote(vhost, safe="")
    try:
        session.put(f"{MANAGEMENT}/api/vhosts/{quoted}", timeout=30).raise_for_status()
        session.put(
            f"{MANAGEMENT}/api/permissions/{quoted}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=30
        ).raise_for_status()
        started = time.monotonic()
        create_queues(vhost, total, max(1, total // 10))
        print(f"\n{total} queues created in vhost {vhost} in {time.monotonic() - started:.1f}s")
        yield vhost
    finally:
        session.delete(f"{MANAGEMENT}/api/vhosts/{quoted}", timeout=300)


def create_queues(vhost: str, total: int, dlqs: int) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", virtual_host=vhost))
    channel = connection.channel()
    channel.exchange_declare("dlx", "direct")
    for j in range(dlqs):
        channel.queue_declare(f"scans.{j:05d}.dlq")
        channel.queue_bind(f"scans.{j:05d}.dlq", "dlx", f"dead.{j:05d}")
    for i in range(total - dlqs):
        channel.queue_declare(f"scans.work.{i:05d}", arguments={
            "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": f"dead.{i % dlqs:05d}",
        })
    for i in range(0, total - dlqs, 4):
        channel.basic_publish("", f"scans.work.{i:05d}", b"{}", pika.BasicProperties(timestamp=int(time.time())))
    connection.close()


def paged_listing(session: requests.Session) -> int:
    """The management API's cheap listing, every page; returns the number of queues."""
    page, pages, count = 1, 1, 0
    while page <= pages:
        answer = session.get(f"{MANAGEMENT}/api/queues?page={page}&page_size=500&{LISTING}", timeout=120).json()
        pages, count, page = answer["page_count"], count + len(answer["items"]), page + 1
    return count


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def broker_cpu(call: Callable[[], object]) -> float:
    """CPU seconds the broker (beam.smp) spends while ``call`` runs (nan where it is not local)."""
    beams = [p for p in psutil.process_iter(["name"]) if p.info["name"] and p.info["name"].startswith("beam")]
    if not beams:
        return float("nan")

    def cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in beams)

    before = cpu()
    call()
    return cpu() - before


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Result:
    queues: int
    median: dict[str, float]
    cpu_paged: float
    cpu_unpaged: float
    peak_rss: float
    rss: float
    kib: int


def measure(session: requests.Session, total: int, rounds: int) -> Result:
    with bench_vhost(session, total):
        port = free_port()
        exporter = subprocess.Popen(
            [sys.executable, "-m", "medobs.cli", "exporter", "queue", "--listen", f"127.0.0.1:{port}",
             "--rabbitmq-url", MANAGEMENT],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            scrape_url = f"http://127.0.0.1:{port}/metrics"
            for _ in range(300):  # until it listens and has read the topology and the details
                try:
                    body = session.get(scrape_url, timeout=60).text
                    if "medobs_queue_up 1" in body and "medobs_queue_details_age_seconds" in body:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(0.2)
            else:
                raise SystemExit("the exporter did not come up")
            measured: dict[str, list[float]] = {"scrape": [], "plain": [], "listing": [], "broker": []}
            for _ in range(rounds):
                measured["scrape"].append(timed(lambda: session.get(scrape_url, timeout=60).content))
                measured["plain"].append(
                    timed(lambda: session.get(scrape_url, headers={"Accept-Encoding": "identity"}, timeout=60).content)
                )
                measured["listing"].append(timed(lambda: paged_listing(session)))
                measured["broker"].append(timed(lambda: session.get(BROKER_ENDPOINT, timeout=60).content))
            cpu_paged = broker_cpu(lambda: paged_listing(session))
            unpaged = f"{MANAGEMENT}/api/queues?{LISTING}&columns=name,vhost,node,state,type,arguments"
            cpu_unpaged = broker_cpu(lambda: session.get(unpaged, timeout=120).content)
            process = psutil.Process(exporter.pid)
            return Result(
                total, {name: statistics.median(times) for name, times in measured.items()}, cpu_paged, cpu_unpaged,
                peak_rss_mb(exporter.pid), process.memory_info().rss / 2**20, len(body) // 1024,
            )
        finally:
            exporter.terminate()
            exporter.wait(timeout=10)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--sizes", default="200,2000,10000", help="queue counts, comma-separated")
    options.add_argument("--rounds", type=int, default=9)
    args = options.parse_args()
    session = requests.Session()
    session.auth = AUTH
    results = [measure(session, int(size), args.rounds) for size in args.sizes.split(",")]

    print(f"\nmedians of {args.rounds} interleaved rounds (ms), broker CPU per listing read (s), exporter memory (MB):")
    print(f"{'queues':>7} {'scrape':>8} {'no gzip':>8} {'listing':>8} {'broker':>8} {'/listing':>9} {'/broker':>8} "
          f"{'cpu paged':>10} {'unpaged':>8} {'peak RSS':>9} {'RSS':>6} {'KiB':>6}")
    checks = []
    for r in results:
        m = r.median
        to_listing, to_broker = m["scrape"] / m["listing"], m["scrape"] / m["broker"]
        print(f"{r.queues:>7} {m['scrape'] * 1e3:8.1f} {m['plain'] * 1e3:8.1f} {m['listing'] * 1e3:8.1f} "
              f"{m['broker'] * 1e3:8.1f} {to_listing:8.2f}x {to_broker:7.2f}x {r.cpu_paged:10.2f} {r.cpu_unpaged:8.2f} "
              f"{r.peak_rss:9.1f} {r.rss:6.1f} {r.kib:6}")
        checks.append((f"{r.queues} queues: scrape / listing = {to_listing:.2f}x", "<= 0.5x", to_listing <= 0.5))
        if r.queues == 2000:
            checks.append((f"{r.queues} queues: scrape / broker  = {to_broker:.2f}x", "<= 3x (stretch)", to_broker <= 3))
        if r.queues >= 10000:
            checks.append((f"{r.queues} queues: peak RSS = {r.peak_rss:.1f} MB", "<= 60 MB", r.peak_rss <= 60))
    print()
    for what, target, ok in checks:
        print(f"  {what:44} target {target:16} {'ok' if ok else 'MISSED'}")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
