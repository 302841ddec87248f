"""Dead-letter topology against the real broker: the exporter's attribution must name the queue
where the broker really puts a rejected message (default exchange, topic, exchange-to-exchange,
policy priority and apply-to)."""

import pika
import pytest

from medobs.core.catalog import queue as catalog
from tests.queue_broker import private_vhost, scrape, series, serving, wait_for

# work queue -> (how it is published: exchange, routing key), and where its dead letters land
CASES = {
    "reports": (("", "reports"), "reports.parking"),  # default exchange, explicit dead-letter key
    "ct.scans": (("ingest", "scan.ct"), "scans.graveyard"),  # topic DLX, the message's own key
    "xray.scans": (("", "xray.scans"), "xray.failed"),  # through an exchange-to-exchange binding
    "mri.scans": (("", "mri.scans"), "mri.rejects"),  # by the higher-priority of two policies
}


@pytest.fixture(scope="module")
def topology():
    with private_vhost() as broker:
        broker.policy("mri-low", r"^mri\.scans", {"dead-letter-exchange": "dlx.nowhere"}, priority=1)
        broker.policy("mri-high", r"^mri\.scans$", {"dead-letter-exchange": "dlx.mri"}, priority=5)
        broker.api("PUT", f"/api/policies/{broker.quoted}/exchanges-only", json={
            "pattern": ".*", "definition": {"alternate-exchange": "none"}, "apply-to": "exchanges", "priority": 99,
        })
        connection = broker.connect()
        channel = connection.channel()
        channel.queue_declare("reports", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "reports.parking"})
        channel.queue_declare("reports.parking")
        channel.exchange_declare("ingest", "topic")
        channel.exchange_declare("dlx.topic", "topic")
        channel.queue_declare("ct.scans", arguments={"x-dead-letter-exchange": "dlx.topic"})
        channel.queue_bind("ct.scans", "ingest", "scan.ct")
        channel.queue_declare("scans.graveyard")
        channel.queue_bind("scans.graveyard", "dlx.topic", "scan.#")
        channel.exchange_declare("dlx.front", "fanout")
        channel.exchange_declare("dlx.back", "direct")
        channel.exchange_bind("dlx.back", "dlx.front", "")
        channel.queue_declare("xray.scans", arguments={"x-dead-letter-exchange": "dlx.front", "x-dead-letter-routing-key": "xray"})
        channel.queue_declare("xray.failed")
        channel.queue_bind("xray.failed", "dlx.back", "xray")
        channel.queue_declare("xray.other")
        channel.queue_bind("xray.other", "dlx.back", "not-xray")
        channel.exchange_declare("dlx.mri", "direct")
        channel.queue_declare("mri.scans")
        channel.queue_declare("mri.rejects")
        channel.queue_bind("mri.rejects", "dlx.mri", "mri.scans")
        for work, ((exchange, key), _) in CASES.items():
            channel.basic_publish(exchange, key, b"{}", pika.BasicProperties(timestamp=1))
            method, _, _ = channel.basic_get(work)
            channel.basic_reject(method.delivery_tag, requeue=False)
        with serving("--include-vhost", broker.vhost) as (_, url):
            yield broker, scrape(url)
        connection.close()


@pytest.mark.slow
def test_attribution_names_where_the_broker_put_the_dead_letters(topology):
    broker, samples = topology
    queues = wait_for(
        broker.queues, lambda qs: all(qs[dlq].get("messages") == 1 for _, dlq in CASES.values()),
        what="the dead letters to land",
    )
    landed = {name for name, queue in queues.items() if queue.get("messages")}
    assert landed == {dlq for _, dlq in CASES.values()}  # the broker's own answer
    info = {
        (labels["queue"], labels["dead_letter_queue"], labels["resolved_by"])
        for labels in map(dict, series(samples, catalog.DEAD_LETTER_INFO.name))
    }
    assert info == {
        ("reports", "reports.parking", "arguments"),
        ("ct.scans", "scans.graveyard", "arguments"),
        ("xray.scans", "xray.failed", "arguments"),
        ("mri.scans", "mri.rejects", "policy"),
    }
    roles = {dict(labels)["queue"]: dict(labels)["role"] for labels in series(samples, catalog.MESSAGES.name)}
    assert {q for q, role in roles.items() if role == "dlq"} == {dlq for _, dlq in CASES.values()}
