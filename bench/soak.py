"""Soak: the local stack's processes for N minutes, scraped all along; RSS, threads and open file
descriptors of every process at the start, at the end and at their highest.

Starts ``medobs stack up`` at the platform's 15 s scrape interval in its own state folder, port
offset, RabbitMQ vhost and PostgreSQL database (removed afterwards): Prometheus scrapes every
target and the simulator sends its traffic through the inference proxy, as in ``make up``. On top
of that, this script scrapes the package's own exporters (GPU, queue, inference) every
``--scrape-every`` seconds, and, after ``--warm-up``, samples every component's processes (a component with children,
PostgreSQL's replica, is summed over them) every ``--sample-every`` seconds. Prints one row per
component, then the components whose threads or file descriptors at the end exceed their highest
of the soak's first half by more than ``--slack`` (still growing: a leak suspect; pools that fill
once and stay do not count), and exits 1 when one did, a component's process ended, or a scrape
failed.

    .venv/bin/python bench/soak.py                 # 10 minutes
    .venv/bin/python bench/soak.py --minutes 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medobs import stack  # noqa: E402
from tests.conftest import StackUnderTest  # noqa: E402  (conftest first, as pytest loads them)

PORT_OFFSET = 16000  # clear of the tests' stacks (13000, 21000, 22000) and bench/stack.py's (14000)


@dataclass
class Usage:
    """One component's RSS (MiB), threads and file descriptors, summed over its processes."""

    rss: float
    threads: int
    fds: int


@dataclass
class Track:
    """A component's samples: the first, the last, and the highest of each figure, over the
    whole soak and over its first half."""

    start: Usage | None = None
    end: Usage | None = None
    peak: Usage = field(default_factory=lambda: Usage(0.0, 0, 0))
    first_half_peak: Usage = field(default_factory=lambda: Usage(0.0, 0, 0))
    processes: int = 0
    ended: bool = False

    def add(self, usage: Usage, first_half: bool) -> None:
        self.start = self.start or usage
        self.end = usage
        self.peak = highest(self.peak, usage)
        if first_half:
            self.first_half_peak = highest(self.first_half_peak, usage)


def highest(a: Usage, b: Usage) -> Usage:
    return Usage(max(a.rss, b.rss), max(a.threads, b.threads), max(a.fds, b.fds))


def usage(process: psutil.Process) -> tuple[Usage, int] | None:
    """``process`` and its descendants, summed, and how many they are; None once it has ended."""
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    total = Usage(0.0, 0, 0)
    for member in members:
        try:
            with member.oneshot():
                total.rss += member.memory_info().rss / 2**20
                total.threads += member.num_threads()
                total.fds += member.num_fds()
        except psutil.NoSuchProcess:  # a child that ended between listing and reading
            continue
    return total, len(members)


def soak(under_test: StackUnderTest, seconds: float, scrape_every: float, sample_every: float) -> tuple[dict, dict]:
    """Run the soak; returns each component's :class:`Track` and each exporter's scrape counts."""
    processes = {comp.name: stack.running_process(under_test.stack, comp) for comp in stack.COMPONENTS}
    tracks = {name: Track() for name in processes}
    endpoints = {job: f"{under_test.stack.url(job)}/metrics" for job in stack.OWN_EXPORTER_JOBS}
    scrapes = {job: {"ok": 0, "failed": 0} for job in endpoints}
    session = requests.Session()
    session.verify = False  # a TLS stack's certificates are its own; the figures are what matters
    started = time.monotonic()
    next_sample = next_scrape = started
    while True:
        now = time.monotonic()
        if now >= next_sample:
            for name, process in processes.items():
                found = usage(process) if process is not None else None
                if found is None:
                    processes[name], tracks[name].ended = None, True
                    continue
                tracks[name].add(found[0], now - started < seconds / 2)
                tracks[name].processes = found[1]
            next_sample += sample_every
            if now - started >= seconds:
                return tracks, scrapes
        if now >= next_scrape:
            for job, url in endpoints.items():
                try:
                    ok = session.get(url, timeout=10).status_code == 200
                except requests.RequestException:
                    ok = False
                scrapes[job]["ok" if ok else "failed"] += 1
            next_scrape += scrape_every
        time.sleep(max(0.0, min(next_sample, next_scrape) - time.monotonic()))


def report(tracks: dict[str, Track], scrapes: dict, slack: int) -> list[str]:
    """Print the table; returns the problems found."""
    print(f"\n{'component':<26} {'procs':>5} | {'RSS MiB start':>13} {'end':>6} {'max':>6} | "
          f"{'threads start':>13} {'end':>4} {'max':>4} | {'fds start':>9} {'end':>4} {'max':>4}")
    problems = []
    for name, track in tracks.items():
        if track.start is None or track.end is None:
            problems.append(f"{name}: no process to sample")
            continue
        s, e, p = track.start, track.end, track.peak
        print(f"{name:<26} {track.processes:>5} | {s.rss:>13.1f} {e.rss:>6.1f} {p.rss:>6.1f} | "
              f"{s.threads:>13} {e.threads:>4} {p.threads:>4} | {s.fds:>9} {e.fds:>4} {p.fds:>4}")
        if track.ended:
            problems.append(f"{name}: its process ended during the soak")
        half = track.first_half_peak
        for what, start, before, after in (("threads", s.threads, half.threads, e.threads),
                                           ("file descriptors", s.fds, half.fds, e.fds)):
            if after > before + slack:
                problems.append(f"{name}: {what} still growing: {start} at the start, at most {before} "
                                f"in the first half, {after} at the end")
    print("\nscrapes of the own exporters (besides Prometheus's): "
          + ", ".join(f"{job} {counts['ok']} ok, {counts['failed']} failed" for job, counts in scrapes.items()))
    problems += [f"{job}: {counts['failed']} scrapes failed" for job, counts in scrapes.items() if counts["failed"]]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default: 10)")
    parser.add_argument("--scrape-every", type=float, default=1.0, metavar="SECONDS",
                        help="interval of this script's scrapes of each own exporter (default: 1)")
    parser.add_argument("--sample-every", type=float, default=5.0, metavar="SECONDS",
                        help="interval of the process samples (default: 5)")
    parser.add_argument("--warm-up", type=float, default=30.0, metavar="SECONDS",
                        help="wait after the stack is up before the first sample: pools and caches fill (default: 30)")
    parser.add_argument("--slack", type=int, default=4,
                        help="threads or fds a component may end with above its start (default: 4)")
    args = parser.parse_args()
    requests.packages.urllib3.disable_warnings()  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as state:
        under_test = StackUnderTest(Path(state) / "state", port_offset=PORT_OFFSET)
        try:
            under_test.up("--wait", "120")
            time.sleep(args.warm_up)
            print(f"soaking the local stack for {args.minutes:g} minutes after {args.warm_up:g} s of warm-up "
                  f"(own exporters scraped every {args.scrape_every:g} s, samples every {args.sample_every:g} s)")
            tracks, scrapes = soak(under_test, args.minutes * 60, args.scrape_every, args.sample_every)
        finally:
            under_test.down()
            under_test.remove_backends()
    problems = report(tracks, scrapes, args.slack)
    for problem in problems:
        print(f"problem: {problem}")
    print("clean soak" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
