"""How long ``medobs build`` takes, and how much of it the SLO simulation (slo/simulate.py) takes.

Measured side by side in one run, medians of RUNS:

- the command as a user runs it: ``medobs build --check`` in the checkout, a fresh process
  (imports included);
- every generator in process (``medobs.build.generate()``), without the imports;
- the SLO simulation alone: the alert states of every generated promtool test's timeline;
- one SLO's simulation over a timeline of DAYS days and of twice that (a simulation linear in the
  timeline's length takes about twice as long for twice the minutes; a quadratic one, four times).

    .venv/bin/python bench/build.py [--runs 5] [--days 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from medobs import build  # noqa: E402
from slo import files, promtest  # noqa: E402
from slo.simulate import Phase, Simulation, Timeline, kind_of  # noqa: E402
from slo.spec import all_slos  # noqa: E402

TARGET = 2.0  # seconds for `medobs build` (issue 14)


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command() -> None:
    subprocess.run([sys.executable, "-m", "medobs.cli", "build", "--check"], cwd=REPO, capture_output=True, check=False)


def every_test_simulation() -> Callable[[], object]:
    subjects = [promtest.tested(slo)[0] for slo in all_slos(files.platform_specs())]
    timelines = [
        (subject, scenario.timeline, kind_of(subject))
        for subject in subjects
        for scenario in promtest.scenarios(subject, kind_of(subject))
    ]
    return lambda: [Simulation(*timeline).states for timeline in timelines]


def long_simulation(minutes: int) -> Callable[[], object]:
    subject = promtest.tested(all_slos(files.platform_specs())[0])[0]
    timeline = Timeline((Phase(minutes, float(subject.budget) / 2),))
    return lambda: Simulation(subject, timeline, kind_of(subject)).states


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (default %(default)s)")
    parser.add_argument("--days", type=int, default=1, help="the long timeline's length in days (default %(default)s)")
    args = parser.parse_args()

    whole = median_seconds(command, args.runs)
    generators = median_seconds(build.generate, args.runs)
    simulation = median_seconds(every_test_simulation(), args.runs)
    minutes = args.days * 1440
    single = median_seconds(long_simulation(minutes), args.runs)
    double = median_seconds(long_simulation(2 * minutes), args.runs)

    print(f"medobs build, medians of {args.runs} runs")
    print(f"{'measurement':58} {'seconds':>8}")
    print(f"{'`medobs build --check` (fresh process, imports included)':58} {whole:8.3f}")
    print(f"{'every generator in process (build.generate())':58} {generators:8.3f}")
    print(f"{'SLO simulation alone (alert states of every generated test)':58} {simulation:8.3f}")
    print(f"{f'one SLO simulated over {minutes} minutes':58} {single:8.3f}")
    print(f"{f'one SLO simulated over {2 * minutes} minutes':58} {double:8.3f}")
    print()
    print(f"SLO simulation / generators: {simulation / generators:.2f}")
    print(f"twice the minutes / once: {double / single:.2f}x (linear: about 2, quadratic: about 4)")
    print(f"target `medobs build` < {TARGET:g} s: {whole:.2f} s = {whole / TARGET:.2f} of the target")
    print("target met" if whole < TARGET else "TARGET MISSED")
    return 0 if whole < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
