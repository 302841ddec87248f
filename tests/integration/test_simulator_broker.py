"""The simulator's RabbitMQ traffic on the real broker: topology, message properties, and the
consumer-stall and poison-message scenarios as ``rabbitmqctl list_queues`` and the management
API report them."""

import json
import subprocess
import time
from urllib.parse import quote

import pytest
import requests

from medobs.simulator.broker import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    QUEUE,
    Verdict,
)
from medobs.simulator.scenarios import SCENARIOS, Knobs
from tests.conftest import require_binary
from tests.simulator_support import (
    GUEST,
    MANAGEMENT,
    queue_depths,
    running_platform,
    wait_for,
)


def list_queues(vhost, *fields):
    """``{queue: (messages, ready, unacked, *fields)}`` from rabbitmqctl, the broker's own view."""
    columns = ("messages", "messages_ready", "messages_unacknowledged", *fields)
    result = subprocess.run(
        [require_binary("rabbitmqctl"), "list_queues", "-q", "-p", vhost, "--formatter", "json", "name", *columns],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return {q["name"]: tuple(q[c] for c in columns) for q in json.loads(result.stdout)}


def quiesce(platform):
    """Stop the traffic and wait until no request is in flight any more."""
    platform.apply("quiet", platform.knobs.with_changes({"request_rate": 0}))
    wait_for(lambda: platform.traffic.in_flight == 0, timeout=30, interval=0.1)


def api(vhost, path):
    answer = requests.get(f"{MANAGEMENT}/api/{path.format(vhost=quote(vhost, safe=''))}", auth=GUEST, timeout=10)
    answer.raise_for_status()
    return answer.json()


def test_topology_has_the_dead_letter_exchange_and_queue():
    with running_platform() as platform:
        vhost = platform.config.broker.vhost
        work = api(vhost, f"queues/{{vhost}}/{QUEUE}")
        assert work["durable"] and work["arguments"] == {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
        assert list_queues(vhost, "consumers")[QUEUE][3] == 1  # the inference worker
        bindings = api(vhost, f"exchanges/{{vhost}}/{DEAD_LETTER_EXCHANGE}/bindings/source")
        assert [(b["destination"], b["routing_key"]) for b in bindings] == [(DEAD_LETTER_QUEUE, QUEUE)]


def test_studies_carry_the_amqp_timestamp_and_their_json():
    with running_platform(Knobs(request_rate=0, consumer_stalled=True)) as platform:
        gateway = platform.urls["gateway"]
        started = time.time()
        ids = [requests.post(f"{gateway}/api/v1/studies", json={"modality": "CT", "images": 3}, timeout=10)
               .json()["studyId"] for _ in range(12)]  # 10 sit unacked with the stalled worker, 2 stay ready
        vhost = quote(platform.config.broker.vhost, safe="")
        got = requests.post(f"{MANAGEMENT}/api/queues/{vhost}/{QUEUE}/get", auth=GUEST, timeout=10,
                            json={"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}).json()
        message = got[0]
        properties = message["properties"]
        assert started - 1 <= properties["timestamp"] <= time.time() + 1
        assert properties["content_type"] == "application/json" and properties["delivery_mode"] == 2
        body = json.loads(message["payload"])
        assert body == {"studyId": body["studyId"], "modality": "CT", "images": 3} and body["studyId"] in ids


@pytest.mark.slow
def test_consumer_stall_grows_the_backlog_the_broker_reports():
    with running_platform(Knobs(request_rate=20), seed=5) as platform:
        vhost = platform.config.broker.vhost
        wait_for(lambda: platform.publisher.published >= 5, timeout=20)
        platform.apply("consumer-stall", SCENARIOS["consumer-stall"].knobs.with_changes({"request_rate": 20}))
        first = wait_for(lambda: list_queues(vhost)[QUEUE][0] >= 12 and list_queues(vhost)[QUEUE], timeout=30)
        time.sleep(2)
        second = list_queues(vhost)[QUEUE]
        assert second[0] > first[0]  # the backlog keeps growing while the worker is stalled
        assert second[2] == 10  # the stalled worker sits on its prefetch window, unacknowledged
        quiesce(platform)
        consumed = sum(platform.consumer.counts.values())
        expected = platform.publisher.published - consumed
        messages, ready, unacked = list_queues(vhost)[QUEUE]
        assert messages == expected and ready == expected - 10  # exactly what was published and not consumed
        assert wait_for(lambda: queue_depths(vhost)[QUEUE] == expected, timeout=20)  # management API agrees
        platform.apply("healthy", Knobs(request_rate=0))
        wait_for(lambda: list_queues(vhost)[QUEUE][0] == 0, timeout=30)  # the worker drains it
        assert platform.consumer.counts[Verdict.ACK] == platform.publisher.published


@pytest.mark.slow
def test_poison_messages_grow_the_dlq_by_the_injected_share():
    with running_platform(Knobs(request_rate=20, poison_ratio=0.5), seed=9) as platform:
        vhost = platform.config.broker.vhost
        wait_for(lambda: list_queues(vhost).get(DEAD_LETTER_QUEUE, (0,))[0] >= 10, timeout=40)
        quiesce(platform)
        wait_for(lambda: list_queues(vhost)[QUEUE][0] == 0, timeout=20)
        published, rejected = platform.publisher.published, platform.consumer.counts[Verdict.REJECT]
        assert abs(rejected - 0.5 * published) <= 1
        assert list_queues(vhost)[DEAD_LETTER_QUEUE] == (rejected, rejected, 0)
        assert wait_for(lambda: queue_depths(vhost)[DEAD_LETTER_QUEUE] == rejected, timeout=20)
        assert platform.consumer.counts[Verdict.ACK] == published - rejected


@pytest.mark.slow
def test_unavailable_model_requeues_studies_until_it_is_back():
    with running_platform(Knobs(request_rate=0, model_available=False)) as platform:
        vhost = platform.config.broker.vhost
        gateway = platform.urls["gateway"]
        ids = [requests.post(f"{gateway}/api/v1/studies", json={"modality": "DX", "images": 1}, timeout=10)
               .json()["studyId"] for _ in range(3)]
        wait_for(lambda: platform.consumer.counts[Verdict.REQUEUE] >= 3, timeout=20)
        assert list_queues(vhost)[QUEUE][0] == 3  # nothing lost, nothing dead-lettered
        assert list_queues(vhost)[DEAD_LETTER_QUEUE][0] == 0
        platform.apply("healthy", Knobs(request_rate=0))
        wait_for(lambda: list_queues(vhost)[QUEUE][0] == 0, timeout=30)
        for study in ids:
            findings = requests.get(f"{gateway}/api/v1/studies/{study}/findings", timeout=10).json()
            assert findings["status"] == "done" and set(findings["findings"][0]) == {
                "normal", "pneumonia", "effusion", "cardiomegaly"}


@pytest.mark.slow
def test_healthy_traffic_leaves_no_backlog_and_no_dead_letters():
    with running_platform(Knobs(request_rate=20)) as platform:
        vhost = platform.config.broker.vhost
        wait_for(lambda: platform.publisher.published >= 10, timeout=20)
        quiesce(platform)
        wait_for(lambda: list_queues(vhost)[QUEUE][0] == 0, timeout=20)
        assert list_queues(vhost)[DEAD_LETTER_QUEUE][0] == 0
        assert platform.consumer.counts[Verdict.ACK] == platform.publisher.published
        statuses = platform.traffic.statuses
        assert not any(status.startswith("5") or status == "error" for status in statuses)
