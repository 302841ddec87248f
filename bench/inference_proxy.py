"""What the inference sidecar's in-path proxy costs: the same load sent directly to the simulated
TF Serving and through ``medobs exporter inference --proxy-listen``, side by side in one run, for
each model time (``--model-ms``, default 20 and 1) and each number of callers (``--clients``,
default 64 and 256).

Each part runs in its own process, as in the pod: the simulated TF Serving, the sidecar (the
real CLI, probe off), and this load generator: one asyncio event loop (uvloop when installed)
with one keep-alive connection per caller, each sending its next request when the last one is
answered. The same generator drives both ways, so its own cost (it shares the machine's cores
with the other two) weighs on direct and proxied alike. Rounds of ``--seconds`` alternate
direct and proxied so that a noisy neighbour hits both; throughput is the median over the
rounds. Prints, per scenario, throughput each way and their ratio, p50 and p99 latency each way,
the p50 the proxy adds, connection errors, and the sidecar's CPU time per proxied request.
Targets (issue 17): ratio at least 0.80 and p50 added at most 1 ms at 64 callers of the 20 ms
model; no errors at 256. Then checks, from the sidecar's own metrics, that the proxy recorded
exactly the requests sent through it (each one, ok, with its latency and its image, none left in
flight), and exits 1 when it did not (or when a request failed).

    .venv/bin/python bench/inference_proxy.py                         # 20 ms and 1 ms, 64 and 256 callers
    .venv/bin/python bench/inference_proxy.py --model-ms 20 --clients 64 --seconds 5 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporters.inference.probe import image_body  # noqa: E402
from medobs.core.catalog import inference  # noqa: E402
from medobs.simulator.tfserving import MODEL  # noqa: E402

try:
    import uvloop
except ImportError:  # the standard loop drives both ways alike, only slower
    uvloop = None

SIMULATOR = """
import sys, threading
from medobs.simulator.tfserving import TFServing
sim = TFServing(base_latency=float(sys.argv[2]), per_instance_latency=0.0, batching=False)
sim.start(("127.0.0.1", int(sys.argv[1])))
threading.Event().wait()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up within {seconds:.0f}s")


@dataclass
class Round:
    """One round of load on one port: latencies of the answered requests, errors, seconds."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


async def _caller(port: int, request: bytes, until: float, result: Round) -> None:
    """One keep-alive connection sending ``request`` until ``until``; a failure is counted and
    the connection opened again (as a client library would)."""
    reader = writer = None
    while time.perf_counter() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            if status != b"200":
                result.errors.append(f"HTTP {status.decode()}")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError, ValueError) as error:
            result.errors.append(type(error).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def drive(port: int, body: bytes, clients: int, seconds: float) -> Round:
    """``clients`` callers sending predict requests to ``port`` for ``seconds``."""
    request = (f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    result = Round()

    async def run() -> None:
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_caller(port, request, until, result) for _ in range(clients)))
        result.seconds = time.perf_counter() - started

    loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return result


def proxy_records(metrics_url: str, seconds: float = 10.0) -> str:
    """The sidecar's exposition once no proxied request is in flight (each is recorded after its
    answer has left, so the last ones may still be on their way into the counters)."""
    deadline = time.monotonic() + seconds
    while True:
        text = requests.get(metrics_url, timeout=5).text
        in_flight = sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                        if sample.name == inference.REQUESTS_IN_FLIGHT.name)
        if in_flight == 0 or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def unrecorded(exposition: str, sent: int) -> list[str]:
    """How the proxy's metrics differ from ``sent`` one-image requests to MODEL that all succeeded;
    [] when it recorded exactly those."""
    samples = [sample for family in text_string_to_metric_families(exposition) for sample in family.samples
               if sample.labels.get("model") == MODEL]

    def total(name: str, **labels: str) -> float:
        return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())

    expected = (
        ("requests", total(inference.REQUESTS.name), sent),
        ("requests with outcome ok", total(inference.REQUESTS.name, outcome="ok"), sent),
        ("latencies observed", total(inference.REQUEST_DURATION.count), sent),
        ("images", total(inference.IMAGES.name), sent),
        ("requests in flight", total(inference.REQUESTS_IN_FLIGHT.name), 0),
    )
    return [f"{what}: the proxy recorded {got:g}, expected {want}" for what, got, want in expected if got != want]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(values) > 1 else values[0]


@dataclass
class Scenario:
    """The measured rounds of one model time and one number of callers, both ways."""

    model_ms: float
    clients: int
    rounds: dict[str, list[Round]] = field(default_factory=lambda: {"direct": [], "proxy": []})
    sidecar_cpu: float = 0.0

    def rate(self, mode: str) -> float:
        return statistics.median(len(r.latencies) / r.seconds for r in self.rounds[mode])

    def latency(self, mode: str, q: float) -> float:
        return percentile([latency for r in self.rounds[mode] for latency in r.latencies], q)

    def errors(self, mode: str) -> list[str]:
        return [error for r in self.rounds[mode] for error in r.errors]

    def proxied(self) -> int:
        return sum(len(r.latencies) for r in self.rounds["proxy"])


def measure(model_ms: float, clients: list[int], body: bytes, seconds: float,
            rounds: int) -> tuple[list[Scenario], list[str], int]:
    """Every scenario of one model time against one simulator and one sidecar; what the proxy's
    metrics got wrong about the requests sent through it; how many were sent through it."""
    sim_port, proxy_port, metrics_port = free_port(), free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    processes = [
        subprocess.Popen([sys.executable, "-c", SIMULATOR, str(sim_port), str(model_ms / 1000)], env=env),
        subprocess.Popen(
            [sys.executable, "-m", "medobs.cli", "exporter", "inference", "--listen", f"127.0.0.1:{metrics_port}",
             "--tfserving-url", f"http://127.0.0.1:{sim_port}", "--model", MODEL, "--probe-interval", "0",
             "--proxy-listen", f"127.0.0.1:{proxy_port}"],
            env=env, stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_for(f"http://127.0.0.1:{sim_port}/v1/models/{MODEL}")
        wait_for(f"http://127.0.0.1:{proxy_port}/v1/models/{MODEL}")
        sidecar = psutil.Process(processes[1].pid)
        warm_up = drive(proxy_port, body, max(clients), min(seconds, 1.0))
        drive(sim_port, body, max(clients), min(seconds, 1.0))
        sent = len(warm_up.latencies)
        scenarios = []
        for count in clients:
            scenario = Scenario(model_ms, count)
            for _ in range(rounds):
                for mode, port in (("direct", sim_port), ("proxy", proxy_port)):
                    cpu_before = sum(sidecar.cpu_times()[:2])
                    scenario.rounds[mode].append(drive(port, body, count, seconds))
                    if mode == "proxy":
                        scenario.sidecar_cpu += sum(sidecar.cpu_times()[:2]) - cpu_before
            sent += scenario.proxied()
            scenarios.append(scenario)
        recorded = proxy_records(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    return scenarios, unrecorded(recorded, sent), sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-ms", default="20,1", help="simulated model times in ms, comma-separated (default: %(default)s)")
    parser.add_argument("--clients", default="64,256", help="numbers of keep-alive callers, comma-separated (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds each way (default: %(default)s)")
    parser.add_argument("--shape", default="8,8,3", help="the image tensor sent, H,W,C (default: %(default)s)")
    args = parser.parse_args()

    body = image_body(tuple(int(size) for size in args.shape.split(",")))
    clients = [int(count) for count in args.clients.split(",")]
    scenarios, problems, sent = [], [], 0
    for model_ms in (float(ms) for ms in args.model_ms.split(",")):
        measured, wrong, proxied = measure(model_ms, clients, body, args.seconds, args.rounds)
        scenarios, problems, sent = scenarios + measured, problems + wrong, sent + proxied

    print(f"{args.rounds} alternating rounds of {args.seconds:g} s each way, body {len(body)} bytes ({args.shape}),"
          f" load generator: one asyncio loop ({'uvloop' if uvloop else 'asyncio'}), {os.cpu_count()} CPUs shared by all")
    print(f"{'model':>6} {'clients':>7} {'direct/s':>9} {'proxy/s':>8} {'ratio':>6} {'p50 direct':>10} {'p50 proxy':>9}"
          f" {'p50 added':>9} {'p99 direct':>10} {'p99 proxy':>9} {'errors':>6} {'CPU/req':>8}")
    failed = False
    for s in scenarios:
        errors = s.errors("direct") + s.errors("proxy")
        failed |= bool(errors)
        added = 1000 * (s.latency("proxy", 0.5) - s.latency("direct", 0.5))
        print(f"{s.model_ms:>4g}ms {s.clients:>7} {s.rate('direct'):>9.0f} {s.rate('proxy'):>8.0f}"
              f" {s.rate('proxy') / s.rate('direct'):>6.2f} {1000 * s.latency('direct', 0.5):>8.2f}ms"
              f" {1000 * s.latency('proxy', 0.5):>7.2f}ms {added:>+7.2f}ms {1000 * s.latency('direct', 0.99):>8.2f}ms"
              f" {1000 * s.latency('proxy', 0.99):>7.2f}ms {len(errors):>6} {1e6 * s.sidecar_cpu / s.proxied():>6.0f}us")
        for error in sorted(set(errors)):
            print(f"  {error}: {errors.count(error)}", file=sys.stderr)
    print("targets: ratio >= 0.80 and p50 added <= 1 ms at 64 clients of the 20 ms model; 0 errors everywhere")
    for problem in problems:
        print(f"proxy metrics wrong: {problem}", file=sys.stderr)
    if problems or failed:
        return 1
    print(f"the proxy recorded exactly the {sent} requests sent through it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
