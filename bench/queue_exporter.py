"""Benchmark: the queue exporter at 2,000 queues, side by side with what it competes against.

Creates a private vhost on the local broker with 2,000 queues (1,800 work queues dead-lettering
through a direct exchange into 200 DLQs, a message in every fourth queue), starts
``medobs exporter queue`` as a separate process, and times in interleaved rounds:

- a scrape of the exporter's /metrics (steady state: topology and details cached);
- a bare paged fetch of the management API's queue listing, stats off, totals on;
- the broker's own ``/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count``;

then prints the medians, the exporter's time as a ratio to each, and the exporter's RSS, against
the targets (scrape <= 0.5x the listing and <= 5x the broker's endpoint; RSS <= 60 MB). The vhost,
and with it every queue, is deleted at the end, whatever happens.

    .venv/bin/python bench/queue_exporter.py [--queues 2000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pika
import psutil
import requests

MANAGEMENT = "http://127.0.0.1:15672"
PLUGIN = "http://127.0.0.1:15692"
AUTH = ("guest", "guest")
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_queues(vhost: str, total: int, dlqs: int) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", virtual_host=vhost))
    channel = connection.channel()
    channel.exchange_declare("dlx", "direct")
    for j in range(dlqs):
        channel.queue_declare(f"scans.{j:04d}.dlq")
        channel.queue_bind(f"scans.{j:04d}.dlq", "dlx", f"dead.{j:04d}")
    for i in range(total - dlqs):
        channel.queue_declare(f"scans.work.{i:04d}", arguments={
            "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": f"dead.{i % dlqs:04d}",
        })
    for i in range(0, total - dlqs, 4):
        channel.basic_publish("", f"scans.work.{i:04d}", b"{}", pika.BasicProperties(timestamp=int(time.time())))
    connection.close()


def paged_listing(session: requests.Session) -> int:
    """The management API's cheap listing, every page; returns the number of queues."""
    page, pages, count = 1, 1, 0
    while page <= pages:
        answer = session.get(
            f"{MANAGEMENT}/api/queues?page={page}&page_size=500&disable_stats=true&enable_queue_totals=true", timeout=60
        ).json()
        pages, count, page = answer["page_count"], count + len(answer["items"]), page + 1
    return count


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--queues", type=int, default=2000)
    options.add_argument("--dlqs", type=int, default=200)
    options.add_argument("--rounds", type=int, default=15)
    args = options.parse_args()

    vhost = f"medobs-bench-{uuid.uuid4().hex[:8]}"
    quoted = quote(vhost, safe="")
    session = requests.Session()
    session.auth = AUTH
    exporter = None
    try:
        session.put(f"{MANAGEMENT}/api/vhosts/{quoted}", timeout=30).raise_for_status()
        session.put(
            f"{MANAGEMENT}/api/permissions/{quoted}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=30
        ).raise_for_status()
        started = time.monotonic()
        create_queues(vhost, args.queues, args.dlqs)
        print(f"created {args.queues} queues ({args.dlqs} DLQs) in vhost {vhost} in {time.monotonic() - started:.1f}s")

        port = free_port()
        exporter = subprocess.Popen(
            [sys.executable, "-m", "medobs.cli", "exporter", "queue", "--listen", f"127.0.0.1:{port}",
             "--rabbitmq-url", MANAGEMENT],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        scrape_url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(100):  # until it listens and has read the topology and the details
            try:
                body = session.get(scrape_url, timeout=30).text
                if "medobs_queue_up 1.0" in body and "medobs_queue_details_age_seconds" in body:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the exporter did not come up")
        series = sum(1 for line in body.splitlines() if line.startswith("medobs_queue_messages{"))
        print(f"the exporter exposes {series} queues, {len(body) // 1024} KiB a scrape")

        broker_url = f"{PLUGIN}/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count"
        measured: dict[str, list[float]] = {"exporter": [], "listing": [], "broker": []}
        for _ in range(args.rounds):
            measured["exporter"].append(timed(lambda: session.get(scrape_url, timeout=60).content))
            measured["listing"].append(timed(lambda: paged_listing(session)))
            measured["broker"].append(timed(lambda: session.get(broker_url, timeout=60).content))
        median = {name: statistics.median(times) for name, times in measured.items()}
        rss = psutil.Process(exporter.pid).memory_info().rss / 2**20

        print(f"\nmedians of {args.rounds} interleaved rounds:")
        print(f"  exporter scrape                         {median['exporter'] * 1000:7.1f} ms")
        print(f"  paged management listing (stats off)    {median['listing'] * 1000:7.1f} ms")
        print(f"  broker /metrics/detailed (coarse+cons.) {median['broker'] * 1000:7.1f} ms")
        to_listing = median["exporter"] / median["listing"]
        to_broker = median["exporter"] / median["broker"]
        checks = [
            (f"exporter / listing = {to_listing:.2f}x", "<= 0.5x", to_listing <= 0.5),
            (f"exporter / broker  = {to_broker:.2f}x", "<= 5x", to_broker <= 5),
            (f"exporter RSS       = {rss:.1f} MB", "<= 60 MB", rss <= 60),
        ]
        print()
        for what, target, ok in checks:
            print(f"  {what:34} target {target:9} {'ok' if ok else 'MISSED'}")
        return 0 if all(ok for *_, ok in checks) else 1
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(timeout=10)
        session.delete(f"{MANAGEMENT}/api/vhosts/{quoted}", timeout=120)
        print(f"deleted vhost {vhost} and its queues")


if __name__ == "__main__":
    sys.exit(main())
