"""The queue exporter against the real RabbitMQ: depths, counters, topology, KEDA, cap, filters."""

import os
import secrets
import signal
import subprocess
import sys
import time

import pika
import pytest
import requests

from exporters.queue.selection import OTHER
from medobs.core.catalog import queue as catalog
from tests.conftest import REPO, free_port, medobs, require_binary
from tests.queue_broker import (
    PLUGIN,
    monitoring_user,
    one_queue,
    private_vhost,
    scrape,
    series,
    serving,
    value,
    wait_for,
)

N, M = 7, 3  # published to each work queue, rejected without requeue from each
A = 3  # got and acknowledged from "studies.acked", before one more is requeued, got again and acknowledged
FAST = ("--topology-interval", "1", "--details-interval", "1")

# queue -> (ready, unacknowledged) once the scenario has run
EXPECTED_DEPTHS = {
    "studies.args": (N - M - 1, 1),
    "studies.args.dlq": (M, 0),
    "studies.policy": (N - M - 2, 2),
    "studies.policy.failed": (M, 0),
    "studies.fanout.a": (N - M, 0),
    "studies.fanout.b": (N - M, 0),
    "fanout.graveyard": (2 * M, 0),
    "medical_data": (2, 0),
    "medical_data.dead": (0, 0),
    "decoy.dlq": (0, 0),
    "studies.orphan": (0, 0),
    "studies.acked": (0, 0),
}
# the management API's message statistics once they have caught up (they lag the depths)
EXPECTED_STATS = {
    "studies.args": {"publish": N, "deliver_get": M + 1},
    "studies.policy": {"publish": N, "deliver_get": M + 2},
    "studies.fanout.a": {"publish": N, "deliver_get": M},
    "studies.fanout.b": {"publish": N, "deliver_get": M},
    "medical_data": {"publish": 2},
    "studies.acked": {"publish": A + 1, "deliver_get": A + 2, "ack": A + 1, "redeliver": 1},
}
# (work queue, dead-letter exchange, dead-letter queue, resolved by)
EXPECTED_ROUTES = {
    ("studies.args", "dlx.direct", "studies.args.dlq", "arguments"),
    ("studies.policy", "dlx.policy", "studies.policy.failed", "policy"),
    ("studies.fanout.a", "dlx.fanout", "fanout.graveyard", "arguments"),
    ("studies.fanout.b", "dlx.fanout", "fanout.graveyard", "arguments"),
    ("medical_data", "", "medical_data.dead", "pattern"),
    ("studies.orphan", "dlx.missing", "", "arguments"),  # its dead letters are dropped
}
DLQS = {"studies.args.dlq", "studies.policy.failed", "fanout.graveyard", "medical_data.dead", "decoy.dlq"}


def publish(channel, queue: str, count: int, age: float = 0.0) -> None:
    for _ in range(count):
        channel.basic_publish("", queue, b"{}", pika.BasicProperties(timestamp=int(time.time() - age)))


def reject(channel, queue: str, count: int) -> None:
    for _ in range(count):
        method, _, _ = channel.basic_get(queue)
        channel.basic_reject(method.delivery_tag, requeue=False)


def acknowledge(channel, queue: str, count: int) -> None:
    for _ in range(count):
        method, _, _ = channel.basic_get(queue)
        channel.basic_ack(method.delivery_tag)


def redeliver(channel, queue: str) -> None:
    """Get a message, requeue it, get it again (redelivered) and acknowledge it."""
    method, _, _ = channel.basic_get(queue)
    channel.basic_reject(method.delivery_tag, requeue=True)
    method, _, _ = channel.basic_get(queue)
    assert method.redelivered
    channel.basic_ack(method.delivery_tag)


def depths_of(queues: dict[str, dict]) -> dict[str, tuple[int, int]]:
    return {name: (q.get("messages_ready"), q.get("messages_unacknowledged")) for name, q in queues.items()}


@pytest.fixture(scope="module")
def scenario():
    """Work queues with DLQs by arguments, by policy and through a fanout exchange, after N
    publishes and M rejections each; one message unacked, one consumer holding two; a queue whose
    messages are acknowledged, one of them after a requeue."""
    with private_vhost() as broker:
        # a lower-priority policy, and one that arguments override: both would send dead letters nowhere
        broker.policy("decoy", r"^studies\.(policy|fanout\.a)$", {"dead-letter-exchange": "dlx.nowhere"}, priority=0)
        broker.policy("dead-letters", r"^studies\.policy$", {"dead-letter-exchange": "dlx.policy"}, priority=10)
        connection = broker.connect()
        channel = connection.channel()
        for exchange, kind in (("dlx.direct", "direct"), ("dlx.policy", "direct"), ("dlx.fanout", "fanout")):
            channel.exchange_declare(exchange, kind)
        channel.queue_declare("studies.args", arguments={
            "x-dead-letter-exchange": "dlx.direct", "x-dead-letter-routing-key": "studies.args.dead",
        })
        channel.queue_declare("studies.args.dlq")
        channel.queue_bind("studies.args.dlq", "dlx.direct", "studies.args.dead")
        channel.queue_declare("studies.policy")
        channel.queue_declare("studies.policy.failed")
        channel.queue_bind("studies.policy.failed", "dlx.policy", "studies.policy")  # the message's own key
        for work in ("studies.fanout.a", "studies.fanout.b"):
            channel.queue_declare(work, arguments={"x-dead-letter-exchange": "dlx.fanout"})
        channel.queue_declare("fanout.graveyard")
        channel.queue_bind("fanout.graveyard", "dlx.fanout", "")
        for name in ("medical_data", "medical_data.dead", "decoy.dlq"):
            channel.queue_declare(name)
        channel.queue_declare("studies.orphan", arguments={"x-dead-letter-exchange": "dlx.missing"})
        for work in ("studies.args", "studies.policy", "studies.fanout.a", "studies.fanout.b"):
            publish(channel, work, N)
            reject(channel, work, M)
        publish(channel, "medical_data", 2)
        channel.queue_declare("studies.acked")
        publish(channel, "studies.acked", A + 1)
        acknowledge(channel, "studies.acked", A)
        redeliver(channel, "studies.acked")
        channel.basic_get("studies.args")  # stays unacknowledged
        consumer = connection.channel()
        consumer.basic_qos(prefetch_count=2)
        consumer.basic_consume("studies.policy", lambda *_: None)
        connection.process_data_events(time_limit=0.5)
        wait_for(
            broker.queues,
            lambda queues: depths_of(queues) == EXPECTED_DEPTHS
            and queues["studies.policy"].get("consumers") == 1
            and all(
                (queues[work].get("message_stats") or {}).get(stat) == expected
                for work, stats in EXPECTED_STATS.items() for stat, expected in stats.items()
            ),
            what="the management API to show the scenario",
        )
        with serving("--include-vhost", broker.vhost, *FAST) as (exporter, url):
            yield broker, url
        connection.close()


def test_depths_and_counters_equal_the_management_api(scenario):
    broker, url = scenario
    samples = scrape(url)
    assert value(samples, catalog.UP.name) == 1
    queues = broker.queues()
    assert set(queues) == set(EXPECTED_DEPTHS)
    for name, queue in queues.items():
        labels = {"vhost": broker.vhost, "queue": name, "role": "dlq" if name in DLQS else "work"}
        stats = queue.get("message_stats") or {}
        assert value(samples, catalog.MESSAGES_READY.name, **labels) == queue["messages_ready"], name
        assert value(samples, catalog.MESSAGES_UNACKED.name, **labels) == queue["messages_unacknowledged"], name
        assert value(samples, catalog.MESSAGES.name, **labels) == queue["messages"], name
        assert value(samples, catalog.CONSUMERS.name, **labels) == queue["consumers"], name
        assert value(samples, catalog.PUBLISHED.name, **labels) == stats.get("publish", 0), name
        assert value(samples, catalog.DELIVERED.name, **labels) == stats.get("deliver_get", 0), name
        assert value(samples, catalog.ACKNOWLEDGED.name, **labels) == stats.get("ack", 0), name
        assert value(samples, catalog.REDELIVERED.name, **labels) == stats.get("redeliver", 0), name
        state = {"vhost": broker.vhost, "queue": name, "state": queue["state"]}
        assert value(samples, catalog.STATE.name, **state) == 1
    acked = {"vhost": broker.vhost, "queue": "studies.acked", "role": "work"}
    assert value(samples, catalog.ACKNOWLEDGED.name, **acked) == queues["studies.acked"]["message_stats"]["ack"] == A + 1
    assert value(samples, catalog.REDELIVERED.name, **acked) == queues["studies.acked"]["message_stats"]["redeliver"] == 1
    consumed = {"vhost": broker.vhost, "queue": "studies.policy", "role": "work"}
    utilisation = value(samples, catalog.CONSUMER_UTILISATION.name, **consumed)
    assert utilisation is not None and 0 <= utilisation <= 1
    assert value(samples, catalog.QUEUES_DROPPED.name) == 0
    assert value(samples, catalog.NODE_UP.name, node="rabbit@localhost") == 1
    assert 0 <= value(samples, catalog.TOPOLOGY_AGE.name) < 30


def test_each_dead_letter_queue_is_attributed_to_its_work_queues(scenario):
    broker, url = scenario
    samples = scrape(url)
    routes = {
        (labels["queue"], labels["dead_letter_exchange"], labels["dead_letter_queue"], labels["resolved_by"])
        for labels in map(dict, series(samples, catalog.DEAD_LETTER_INFO.name))
    }
    assert routes == EXPECTED_ROUTES
    roles = {dict(labels)["queue"]: dict(labels)["role"] for labels in series(samples, catalog.MESSAGES.name)}
    assert roles == {name: "dlq" if name in DLQS else "work" for name in EXPECTED_DEPTHS}


def test_keda_length_counts_as_the_keda_scaler_does(scenario):
    broker, url = scenario
    samples = scrape(url)
    connection = broker.connect()
    try:
        channel = connection.channel()
        for work in ("studies.args", "studies.policy", "medical_data"):
            labels = {"vhost": broker.vhost, "queue": work, "role": "work"}
            # what KEDA's scaler reads over AMQP: queue.declare-ok's message count (ready only)
            declared = channel.queue_declare(work, passive=True).method.message_count
            assert value(samples, catalog.KEDA_LENGTH.name, **labels) == declared
    finally:
        connection.close()
    assert value(samples, catalog.KEDA_LENGTH.name, vhost=broker.vhost, queue="studies.policy", role="work") == 2
    with serving("--include-vhost", broker.vhost, "--keda-mode", "http") as (_, http_url):
        http = scrape(http_url)
    labels = {"vhost": broker.vhost, "queue": "studies.policy", "role": "work"}
    assert value(http, catalog.KEDA_LENGTH.name, **labels) == broker.queues()["studies.policy"]["messages"] == 4


def test_global_dead_letter_counters(scenario):
    _, url = scenario
    samples = wait_for(
        lambda: scrape(url), lambda s: series(s, catalog.DEAD_LETTERED.name), what="the dead-letter counters"
    )
    rejected = value(
        samples, catalog.DEAD_LETTERED.name,
        queue_type="rabbit_classic_queue", reason="rejected", dead_letter_strategy="at_most_once",
    )
    assert rejected >= 4 * M  # the broker is shared: others may reject too
    reasons = {dict(labels)["reason"] for labels in series(samples, catalog.DEAD_LETTERED.name)}
    assert reasons == {"rejected", "expired", "maxlen", "delivery_limit"}


def test_exposition_passes_promtool_in_both_formats(scenario, tmp_path):
    _, url = scenario
    text = requests.get(url, timeout=15).text
    exposition = tmp_path / "metrics.txt"
    exposition.write_text(text)
    with exposition.open() as stdin:
        check = subprocess.run([require_binary("promtool"), "check", "metrics"], stdin=stdin, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr
    openmetrics = requests.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=15)
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    families = {family.name: family for family in text_string_to_metric_families(openmetrics.text)}
    published = families[catalog.PUBLISHED.name.removesuffix("_total")]
    assert published.type == "counter" and len(published.samples) == len(EXPECTED_DEPTHS)


def test_cardinality_cap_keeps_the_deepest_and_sums_the_rest(scenario):
    broker, _ = scenario
    with serving("--include-vhost", broker.vhost, "--max-queues", "3") as (_, url):
        first, second = scrape(url), scrape(url)
    kept = {dict(labels)["queue"] for labels in series(first, catalog.MESSAGES.name)}
    assert kept == {"fanout.graveyard", "studies.args", "studies.fanout.a", OTHER}  # 6, then 4s by name
    assert series(first, catalog.MESSAGES.name).keys() == series(second, catalog.MESSAGES.name).keys()
    assert value(first, catalog.QUEUES_DROPPED.name) == len(EXPECTED_DEPTHS) - 3
    other = {"vhost": broker.vhost, "queue": OTHER}
    assert value(first, catalog.MESSAGES.name, **other, role="work") == 4 + 4 + 2
    assert value(first, catalog.MESSAGES.name, **other, role="dlq") == M + M
    assert value(first, catalog.PUBLISHED.name, **other, role="work") == N + N + 2 + A + 1
    assert value(first, catalog.ACKNOWLEDGED.name, **other, role="work") == A + 1
    assert sum(series(first, catalog.MESSAGES.name).values()) == sum(ready + unacked for ready, unacked in EXPECTED_DEPTHS.values())


def test_filters_by_vhost_and_queue(scenario):
    broker, _ = scenario
    with serving("--include-vhost", broker.vhost, "--exclude-queue", r"studies\..*") as (_, url):
        samples = scrape(url)
    names = {dict(labels)["queue"] for labels in series(samples, catalog.MESSAGES.name)}
    assert names == {name for name in EXPECTED_DEPTHS if not name.startswith("studies.")}
    info = {dict(labels)["queue"] for labels in series(samples, catalog.DEAD_LETTER_INFO.name)}
    assert info == {"medical_data"}
    with serving("--include-vhost", "no-such-vhost") as (_, url):
        assert not series(scrape(url), catalog.MESSAGES.name)


def test_management_listing_when_the_plugin_is_not_used_across_pages(scenario):
    broker, _ = scenario
    page_size = 5  # the vhost's queues alone fill three pages of the listing
    flags = ("--include-vhost", broker.vhost, "--depth-source", "management", "--page-size", str(page_size), *FAST)
    with serving(*flags) as (_, url):
        samples = scrape(url)
    queues = broker.queues()
    assert len(queues) > 2 * page_size
    assert {dict(labels)["queue"] for labels in series(samples, catalog.MESSAGES.name)} == set(queues)
    for name, queue in queues.items():
        labels = {"vhost": broker.vhost, "queue": name, "role": "dlq" if name in DLQS else "work"}
        assert value(samples, catalog.MESSAGES_READY.name, **labels) == queue["messages_ready"], name
        assert value(samples, catalog.MESSAGES_UNACKED.name, **labels) == queue["messages_unacknowledged"], name
        assert value(samples, catalog.CONSUMERS.name, **labels) == queue["consumers"], name
        stats = queue.get("message_stats") or {}
        for entry, stat in ((catalog.PUBLISHED, "publish"), (catalog.ACKNOWLEDGED, "ack"), (catalog.REDELIVERED, "redeliver")):
            assert value(samples, entry.name, **labels) == stats.get(stat, 0), (name, stat)
    assert value(samples, catalog.REDELIVERED.name, vhost=broker.vhost, queue="studies.acked", role="work") == 1
    assert not series(samples, catalog.NODE_UP.name)


def test_counters_stay_monotonic_when_the_broker_forgets_a_channel():
    with one_queue("scans") as (broker, connection, channel):
        publish(channel, "scans", 5)
        with serving("--include-vhost", broker.vhost, *FAST) as (_, url):
            labels = {"vhost": broker.vhost, "queue": "scans", "role": "work"}
            wait_for(lambda: value(scrape(url), catalog.PUBLISHED.name, **labels), lambda v: v == 5, what="5 published")
            connection.close()

            def broker_sum() -> str:
                detailed = requests.get(f"{PLUGIN}/metrics/detailed?family=channel_queue_exchange_metrics", timeout=10).text
                return [line for line in detailed.splitlines() if f'queue_vhost="{broker.vhost}"' in line]

            wait_for(broker_sum, lambda lines: lines == [], what="the broker to forget the closed channel")
            assert value(scrape(url), catalog.PUBLISHED.name, **labels) == 5
            again = broker.connect()
            publish(again.channel(), "scans", 2)
            wait_for(lambda: value(scrape(url), catalog.PUBLISHED.name, **labels), lambda v: v == 7, what="7 published")
            again.close()


@pytest.mark.slow
def test_oldest_message_age_grows_while_the_consumer_is_stopped():
    with one_queue("inference.requests") as (broker, connection, channel):
        publish(channel, "inference.requests", 3)
        tag = channel.basic_consume("inference.requests", lambda ch, method, *_: ch.basic_ack(method.delivery_tag))
        connection.process_data_events(time_limit=1)
        channel.basic_cancel(tag)  # the consumer stops; new studies wait
        published_at = int(time.time() - 20)
        for _ in range(3):
            channel.basic_publish("", "inference.requests", b"{}", pika.BasicProperties(timestamp=published_at))
        labels = {"vhost": broker.vhost, "queue": "inference.requests", "role": "work"}
        with serving("--include-vhost", broker.vhost, *FAST) as (_, url):
            first = wait_for(
                lambda: scrape(url), lambda s: (value(s, catalog.OLDEST_MESSAGE_AGE.name, **labels) or 0) >= 20,
                what="the head message's age",
            )
            time.sleep(2.5)
            second = scrape(url)
    age1 = value(first, catalog.OLDEST_MESSAGE_AGE.name, **labels)
    age2 = value(second, catalog.OLDEST_MESSAGE_AGE.name, **labels)
    assert age2 - age1 >= 2
    assert abs(age2 - (time.time() - published_at)) < 5
    assert value(second, catalog.CONSUMERS.name, **labels) == 0
    assert value(second, catalog.MESSAGES_READY.name, **labels) == 3


def test_command_serves_until_sigterm_as_a_user_whose_password_is_only_in_a_file(tmp_path):
    password = f"file-only-{secrets.token_hex(8)}"
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    port = free_port()
    with one_queue("reports") as (broker, _, channel), monitoring_user(broker, password) as user:
        publish(channel, "reports", 3)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env |= {"RABBITMQ_USER": user, "RABBITMQ_PASSWORD_FILE": str(secret)}
        process = subprocess.Popen(
            [sys.executable, "-m", "medobs.cli", "exporter", "queue", "--listen", f"127.0.0.1:{port}",
             "--rabbitmq-url", "http://127.0.0.1:15672", "--include-vhost", broker.vhost],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            labels = {"vhost": broker.vhost, "queue": "reports", "role": "work"}
            samples = wait_for(
                lambda: _try_scrape(url), lambda s: s is not None and value(s, catalog.MESSAGES_READY.name, **labels) == 3,
                what="the exporter to show the vhost's queue",
            )
            exposition = requests.get(url, timeout=15).text
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=10)
    assert value(samples, catalog.UP.name) == 1
    assert process.returncode == 0, output
    assert f"serving RabbitMQ management API at http://127.0.0.1:15672 on http://127.0.0.1:{port}/metrics" in output
    assert password not in output and password not in exposition


def test_a_configured_dlq_pattern_marks_dead_letter_queues_the_topology_does_not_reveal():
    with one_queue("reports") as (broker, _, channel):
        for name in ("reports.parked", "reports.dlq"):  # no dead-letter exchange points at either
            channel.queue_declare(name)
        with serving("--include-vhost", broker.vhost, "--dlq-pattern", "*.parked") as (_, url):
            samples = scrape(url)
    roles = {dict(labels)["queue"]: dict(labels)["role"] for labels in series(samples, catalog.MESSAGES.name)}
    assert roles == {"reports": "work", "reports.parked": "dlq", "reports.dlq": "work"}  # the flag replaces the defaults
    routes = {
        (labels["queue"], labels["dead_letter_exchange"], labels["dead_letter_queue"], labels["resolved_by"])
        for labels in map(dict, series(samples, catalog.DEAD_LETTER_INFO.name))
    }
    assert routes == {("reports", "", "reports.parked", "pattern")}


def _try_scrape(url):
    try:
        return scrape(url, timeout=5)
    except requests.ConnectionError:
        return None


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rabbitmq-url", "http://guest:s3cret@127.0.0.1:15672"], "--rabbitmq-url carries a password"),
        (["--rabbitmq-url", "amqp://rabbitmq:5672"], "is not an http(s) URL"),
        (["--include-queue", "("], "is not a regular expression"),
        (["--page-size", "900"], "is not a page size from 1 to 500"),
        (["--max-response-size", "12XB"], "is not a size above 0"),
        (["--max-response-size", "0"], "is not a size above 0"),
        (["--topology-interval", "0"], "is not a number of seconds above 0"),
        (["--rabbitmq-user", "monitor"], "no password for user 'monitor'"),
        (["--ca-file", "/no/such/ca.pem"], "/no/such/ca.pem: no such file"),
        (["--listen", "9419"], "is not HOST:PORT"),
    ],
)
def test_usage_mistakes_are_one_line(args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
    result = medobs("exporter", "queue", *args, env=env, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "s3cret" not in result.stderr


def test_help_explains_the_command():
    result = medobs("exporter", "queue", "--help", check=True)
    for flag in ("--rabbitmq-url", "--keda-mode", "--max-queues", "--dlq-pattern", "--include-vhost",
                 "--topology-interval", "--ca-file", "--listen", "RABBITMQ_PASSWORD", "--max-response-size",
                 "--plugin-credentials"):
        assert flag in result.stdout
    assert "queue" in medobs("exporter", "--help", check=True).stdout
