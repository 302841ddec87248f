"""End to end on the running local stack: faults injected through the simulator's control
endpoint, seen through Prometheus's HTTP API as the broker and the gateway report them."""

import json
import subprocess
import time

from medobs.core.catalog import gateway, queue
from medobs.simulator.broker import DEAD_LETTER_QUEUE, PREFETCH, QUEUE
from tests.conftest import require_binary
from tests.stack_support import SCRAPE_INTERVAL, wait_until

FIGURES = ("messages_ready", "messages_unacknowledged", "messages")


def broker_queues(vhost: str) -> dict[str, dict[str, int]]:
    """``rabbitmqctl list_queues``: the broker's own figures, now (the management API's lag a few seconds)."""
    listed = subprocess.run(
        [require_binary("rabbitmqctl"), "list_queues", "-p", vhost, "-q", "--formatter", "json", "name", *FIGURES],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return {q["name"]: {figure: int(q[figure]) for figure in FIGURES} for q in json.loads(listed.stdout)}


def settled(vhost: str) -> dict[str, dict[str, int]]:
    """The broker's figures once they stop moving (requests in flight have published)."""
    previous = broker_queues(vhost)
    while True:
        time.sleep(1)
        current = broker_queues(vhost)
        if current == previous:
            return current
        previous = current


def test_consumer_stall_and_poison_messages_reach_prometheus_as_the_broker_counts_them(healthy_stack):
    vhost = healthy_stack.vhost
    # Poison: every study malformed, the worker rejects each into the DLQ.
    healthy_stack.scenario("poison-messages", poison_ratio=1.0)
    wait_until(lambda: broker_queues(vhost)[DEAD_LETTER_QUEUE]["messages"] >= 12, timeout=60,
               what="the DLQ filling with rejected studies")
    # Stall: the worker keeps its prefetched studies unacknowledged and takes no more.
    healthy_stack.scenario("consumer-stall")
    wait_until(lambda: broker_queues(vhost)[QUEUE]["messages_ready"] >= 12, timeout=60,
               what="medical_data's backlog growing")
    healthy_stack.scenario(request_rate=0)  # freeze the numbers: still stalled, nothing published
    broker = settled(vhost)
    assert broker[QUEUE]["messages_unacknowledged"] == PREFETCH
    assert broker[DEAD_LETTER_QUEUE]["messages"] >= 12 and broker[QUEUE]["messages_ready"] >= 12

    def prometheus() -> dict[str, dict[str, float]]:
        figures = {}
        for figure, metric in (("messages_ready", queue.MESSAGES_READY), ("messages_unacknowledged",
                                queue.MESSAGES_UNACKED), ("messages", queue.MESSAGES)):
            for row in healthy_stack.query(f'{metric.name}{{job="rabbitmq", vhost="{vhost}"}}'):
                figures.setdefault(row["metric"]["queue"], {})[figure] = int(float(row["value"][1]))
        return figures

    # the broker's plugin refreshes its figures every 5 s, then the next scrape carries them
    seen = wait_until(lambda: (found := prometheus()).get(QUEUE) == broker[QUEUE]
                      and found.get(DEAD_LETTER_QUEUE) == broker[DEAD_LETTER_QUEUE] and found,
                      timeout=10 + 3 * SCRAPE_INTERVAL, interval=1, what=f"Prometheus showing the broker's {broker}")
    assert seen[QUEUE]["messages"] == broker[QUEUE]["messages_ready"] + PREFETCH
    keda = healthy_stack.value(f'{queue.KEDA_LENGTH.name}{{vhost="{vhost}", queue="{QUEUE}"}}')
    assert keda == broker[QUEUE]["messages_ready"]  # KEDA (AMQP mode) counts ready messages: it would scale


def test_an_error_burst_shows_as_the_injected_5xx_share_within_two_scrape_intervals(healthy_stack):
    """How it is measured: the gateway's 5xx share among the requests it completed between the
    last two scrapes, from the counters Prometheus stored, evaluated by Prometheus at the instant
    two scrape intervals after the switch: ``(sum(5xx) - sum(5xx offset I)) / (sum(all) -
    sum(all offset I))``. Both scrapes before that instant happened after the switch, so the share
    is the injected 25 %, up to the one request the exact share and the requests in flight at each
    scrape can move (2 / the requests in the window). (``rate`` or ``irate`` would miss the burst's
    first 500s: a ``status="500"`` series that first appears with the burst counts only from its
    second sample.)"""
    interval = f"{SCRAPE_INTERVAL}s"

    def completed(*matchers: str) -> str:
        """Requests the gateway completed between the last two scrapes."""
        selector = ", ".join(['job="api-gateway"', 'uri!~"/actuator.*"', *matchers])
        series = f"{gateway.HTTP_SERVER_REQUESTS.count}{{{selector}}}"
        return f"((sum({series}) or vector(0)) - (sum({series} offset {interval}) or vector(0)))"

    server_errors = 'status=~"5.."'
    share = f"{completed(server_errors)} / {completed()}"
    wait_until(lambda: healthy_stack.value(completed()), timeout=30, what="gateway traffic")

    switched = time.time()
    assert healthy_stack.value(share, at=switched) == 0  # healthy: no 5xx at all
    assert healthy_stack.scenario("error-burst")["knobs"]["error_ratio"] == 0.25

    deadline = switched + 2 * SCRAPE_INTERVAL
    time.sleep(max(0.0, deadline - time.time()) + 1)  # the scrape at the deadline has been stored
    answered = healthy_stack.value(completed(), at=deadline)
    assert answered >= 20, f"too little traffic to measure a share: {answered:.0f} requests"
    measured = healthy_stack.value(share, at=deadline)
    assert abs(measured - 0.25) <= 2 / answered, f"5xx share {measured:.3f} of {answered:.0f} requests"
