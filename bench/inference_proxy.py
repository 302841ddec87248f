"""What the inference sidecar's in-path proxy costs: the same load sent directly to the simulated
TF Serving and through ``medobs exporter inference --proxy-listen``, side by side in one run.

Each of the three parts runs in its own process, as in the pod: the simulated TF Serving, the
sidecar (the real CLI, probe off), and this load generator (``--concurrency`` threads, each on
one keep-alive connection). Rounds alternate direct and proxied so that a noisy neighbour on the
machine hits both alike; throughput is the median over the rounds, so that a neighbour's burst
in one round does not decide it. Prints the latency each way (p50, p99), the latency the proxy
adds, the throughput ratio and the sidecar's CPU time per proxied request; targets: p50 overhead
under 1 ms, throughput at least 0.8x of direct. Then checks, from the sidecar's own metrics, that
the proxy recorded exactly the requests sent through it (each one, ok, with its latency and its
image, none left in flight), and exits 1 when it did not.

    .venv/bin/python bench/inference_proxy.py                 # defaults: 4000 requests each way
    .venv/bin/python bench/inference_proxy.py --shape 224,224,3 --requests 400
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporters.inference.probe import image_body  # noqa: E402
from medobs.core.catalog import inference  # noqa: E402
from medobs.simulator.tfserving import MODEL  # noqa: E402

SIMULATOR = """
import sys, threading
from medobs.simulator.tfserving import TFServing
sim = TFServing(base_latency=float(sys.argv[2]), per_instance_latency=0.0, batching=False)
sim.start(("127.0.0.1", int(sys.argv[1])))
threading.Event().wait()
"""


#: Requests each way before the measured rounds.
WARM_UP = 200


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


def drive(port: int, body: bytes, count: int, concurrency: int) -> tuple[list[float], float]:
    """Send ``count`` predict requests with ``concurrency`` keep-alive connections: (latencies, seconds).
    Any answer but 200, or a request that fails, ends the benchmark."""
    path = f"/v1/models/{MODEL}:predict"
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    share = [count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)]

    def worker(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, failure = [], ""
        try:
            for _ in range(n):
                started = time.perf_counter()
                connection.request("POST", path, body, headers)
                answer = connection.getresponse()
                answer.read()
                mine.append(time.perf_counter() - started)
                if answer.status != 200:
                    failure = f"HTTP {answer.status}"
                    break
        except (OSError, http.client.HTTPException) as error:
            failure = f"{type(error).__name__} {error}"
        connection.close()
        with lock:
            latencies.extend(mine)
            if failure:
                failures.append(f"{failure} from port {port}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in share]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(failures[0])
    return latencies, time.perf_counter() - started


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
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="requests each way (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent connections (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds each way (default: %(default)s)")
    parser.add_argument("--base-latency", type=float, default=0.005,
                        help="the simulated model's inference time in seconds (default: %(default)s)")
    parser.add_argument("--shape", default="8,8,3", help="the image tensor sent, H,W,C (default: %(default)s)")
    args = parser.parse_args()

    body = image_body(tuple(int(size) for size in args.shape.split(",")))
    sim_port, proxy_port, metrics_port = free_port(), free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    processes = [
        subprocess.Popen([sys.executable, "-c", SIMULATOR, str(sim_port), str(args.base_latency)], env=env),
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
        drive(sim_port, body, WARM_UP, args.concurrency)  # warm-up, both ways
        drive(proxy_port, body, WARM_UP, args.concurrency)
        latencies: dict[str, list[float]] = {"direct": [], "proxy": []}
        rates: dict[str, list[float]] = {"direct": [], "proxy": []}
        per_round = args.requests // args.rounds
        sidecar = psutil.Process(processes[1].pid)
        sidecar_cpu = 0.0
        for _ in range(args.rounds):
            for mode, port in (("direct", sim_port), ("proxy", proxy_port)):
                cpu_before = sum(sidecar.cpu_times()[:2])
                measured, seconds = drive(port, body, per_round, args.concurrency)
                if mode == "proxy":
                    sidecar_cpu += sum(sidecar.cpu_times()[:2]) - cpu_before
                latencies[mode] += measured
                rates[mode].append(len(measured) / seconds)
        recorded = proxy_records(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(10)

    print(f"{per_round * args.rounds} requests each way, {args.concurrency} connections, {args.rounds} alternating rounds,"
          f" model time {args.base_latency * 1000:g} ms, body {len(body)} bytes ({args.shape})")
    print(f"{'':8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    summary = {}
    for mode in ("direct", "proxy"):
        summary[mode] = (percentile(latencies[mode], 0.5), percentile(latencies[mode], 0.99), statistics.median(rates[mode]))
        p50, p99, rate = summary[mode]
        print(f"{mode:8}{p50 * 1000:9.2f}{p99 * 1000:9.2f}{rate:9.0f}")
    (d50, d99, drate), (p50, p99, prate) = summary["direct"], summary["proxy"]
    print(f"added latency: p50 {1000 * (p50 - d50):+.2f} ms, p99 {1000 * (p99 - d99):+.2f} ms"
          f"   (target: p50 under 1 ms)")
    print(f"throughput ratio proxy/direct: {prate / drate:.2f}   (target: at least 0.80)")
    print(f"sidecar CPU per proxied request: {1e6 * sidecar_cpu / (per_round * args.rounds):.0f} us")
    sent = WARM_UP + len(latencies["proxy"])
    problems = unrecorded(recorded, sent)
    for problem in problems:
        print(f"proxy metrics wrong: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"the proxy recorded exactly the {sent} requests sent through it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
