"""The queue exporter's pure parts: monotonic counters, topic matching, name patterns, the cap,
the plugin parser, and the fast exposition path (checked against prometheus_client's)."""

import math

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from exporters.queue.client import HttpClient
from exporters.queue.counters import MonotonicCounters
from exporters.queue.model import Depth, count
from exporters.queue.plugin import parse
from exporters.queue.selection import QueueFilter, cap
from exporters.queue.topology import DlqPattern, topic_matches
from medobs.core import runtime as base
from medobs.core.catalog import queue as catalog

SERIES = ("published", "/", "studies")


def test_counters_survive_a_closed_channel_and_a_reset():
    counters = MonotonicCounters()
    counters.update({(SERIES, ("rabbit@a", "ch1")): 5, (SERIES, ("rabbit@a", "ch2")): 3}, {"rabbit@a"})
    assert counters.totals[SERIES] == 8
    # ch1 closed (its numbers vanish), ch2 grew by 2, ch3 is new
    growth = counters.update({(SERIES, ("rabbit@a", "ch2")): 5, (SERIES, ("rabbit@a", "ch3")): 1}, {"rabbit@a"})
    assert growth[SERIES] == 3 and counters.totals[SERIES] == 11
    # ch2 went backwards (a reset): all of its new value is growth
    counters.update({(SERIES, ("rabbit@a", "ch2")): 2, (SERIES, ("rabbit@a", "ch3")): 1}, {"rabbit@a"})
    assert counters.totals[SERIES] == 13


def test_counters_of_a_node_that_did_not_answer_are_not_counted_twice():
    counters = MonotonicCounters()
    a, b = (SERIES, ("rabbit@a", "ch")), (SERIES, ("rabbit@b", "ch"))
    counters.update({a: 10, b: 20}, {"rabbit@a", "rabbit@b"})
    counters.update({a: 11}, {"rabbit@a"})  # rabbit@b missed this scrape
    counters.update({a: 11, b: 21}, {"rabbit@a", "rabbit@b"})
    assert counters.totals[SERIES] == 32


def test_counters_forget_series_that_are_gone():
    counters = MonotonicCounters()
    counters.update({(SERIES, ("n", "ch")): 4}, {"n"})
    counters.update({}, {"n"}, keep=lambda series: False)
    assert counters.totals == {}
    counters.update({(SERIES, ("n", "ch")): 4}, {"n"})
    assert counters.totals[SERIES] == 4  # a queue created again starts again


@pytest.mark.parametrize(
    "binding,key,matches",
    [
        ("studies.*", "studies.ct", True), ("studies.*", "studies.ct.chest", False), ("studies.#", "studies", True),
        ("studies.#", "studies.ct.chest", True), ("#", "anything.at.all", True), ("*.dead", "ct.dead", True),
        ("#.dead", "a.b.dead", True), ("studies.*", "reports.ct", False), ("a.#.z", "a.z", True),
    ],
)
def test_topic_matching(binding, key, matches):
    assert topic_matches(binding, key) is matches


def test_dlq_patterns_name_the_work_queue():
    assert DlqPattern("*.dlq").work_queue_of("medical_data.dlq") == "medical_data"
    assert DlqPattern("*.dlq").work_queue_of("medical_data") is None
    assert DlqPattern("dead-*-?").work_queue_of("dead-x-1") == ""  # matches, but names no single queue
    assert DlqPattern("*.dead").work_queue_of("a.dlq.dead") == "a.dlq"


def test_cap_is_deterministic_top_n_by_depth():
    depths = {("/", name): Depth(ready, 0) for name, ready in [("c", 5), ("a", 5), ("b", 9), ("d", 0), ("e", 1)]}
    kept, folded = cap(depths, 3)
    assert kept == [("/", "a"), ("/", "b"), ("/", "c")] and folded == [("/", "e"), ("/", "d")]
    assert cap(depths, 10) == (sorted(depths), [])


def test_queue_filter_matches_whole_names():
    import re

    only = QueueFilter(include_vhost=re.compile("medical"), exclude_queue=re.compile(r".*\.dlq"))
    assert only(("medical", "studies")) and not only(("medical-platform", "studies"))
    assert not only(("medical", "studies.dlq"))


def test_parse_reads_escaped_labels_and_skips_other_families():
    text = (
        "# TYPE rabbitmq_detailed_queue_messages_ready gauge\n"
        'rabbitmq_detailed_queue_messages_ready{vhost="/",queue="we\\"ird} name"} 3\n'
        'rabbitmq_detailed_queue_process_memory_bytes{vhost="/",queue="a"} 99\n'
    )
    assert list(parse(text, frozenset({"rabbitmq_detailed_queue_messages_ready"}), "x")) == [
        ("rabbitmq_detailed_queue_messages_ready", {"vhost": "/", "queue": 'we"ird} name'}, 3.0)
    ]
    with pytest.raises(base.CollectionError) as error:
        list(parse('rabbitmq_detailed_queue_messages_ready{vhost="/"', frozenset({"rabbitmq_detailed_queue_messages_ready"}), "x"))
    assert error.value.kind == "malformed"


@pytest.mark.parametrize("encoder", [generate_latest, generate_openmetrics])
def test_lines_family_renders_as_prometheus_client_does(encoder):
    """The fast path writes what prometheus_client would write for the same samples."""
    awkward = ("v\\host", 'q"uote\nnewline', "work")
    values = [("/", "a", "work", 3), ("/", "b", "dlq", 0.25), (*awkward, math.inf), ("/", "c", "work", math.nan)]
    for entry in (catalog.MESSAGES_READY, catalog.PUBLISHED):
        fast = base.LinesFamily(entry)
        reference = base.gauge(entry) if entry.type == "gauge" else base.counter(entry)
        for *labels, value in values if entry.type == "gauge" else values[:-1]:  # a NaN counter is invalid
            fast.add(tuple(labels), base.label_block(entry.labels, labels), value)
            reference.add_metric(labels, value)
        rendered = base.encode([fast], encoder).decode()
        expected = encoder(base._Snapshot([reference])).decode()
        assert _parsed(rendered, encoder) == _parsed(expected, encoder)
        assert rendered.splitlines()[:2] == expected.splitlines()[:2]  # HELP and TYPE
        assert fast.samples == reference.samples


def _parsed(text, encoder):
    if encoder is generate_openmetrics:
        from prometheus_client.openmetrics.parser import (
            text_string_to_metric_families as parse_openmetrics,
        )

        families = parse_openmetrics(text)
    else:
        families = text_string_to_metric_families(text)
    return [(s.name, sorted(s.labels.items()), repr(float(s.value))) for family in families for s in family.samples]


@pytest.mark.parametrize("text,items", [
    ("[]", []), (" [ ] \n", []), ('[{"a": 1}]', [{"a": 1}]), ('[1, "two", null , {"x": [3]}]', [1, "two", None, {"x": [3]}]),
])
def test_json_items_decode_one_at_a_time(monkeypatch, text, items):
    client = HttpClient(None, None)
    monkeypatch.setattr(client, "_read", lambda url, deadline: bytearray(text.encode()))
    assert list(client.get_items("http://broker/api/x", base.Deadline(1))) == items


@pytest.mark.parametrize("text", ["", "{}", "[1,", "[1 2]", "[1] x", "[,]", '["a",]', "[" * 100000])
def test_json_items_refuse_what_is_not_a_list_as_malformed(monkeypatch, text):
    client = HttpClient(None, None)
    monkeypatch.setattr(client, "_read", lambda url, deadline: bytearray(text.encode()))
    with pytest.raises(base.CollectionError) as raised:
        list(client.get_items("http://broker/api/x", base.Deadline(1)))
    assert raised.value.kind == "malformed"


@pytest.mark.parametrize("raw,expected", [
    (None, 0), (0, 0), (7, 7), (7.0, 7), (2**53, 2**53), (2**53 + 1, None), (10**400, None), (float("inf"), None),
    (float("nan"), None), (-1, None), (2.5, None), (True, None), ("3", None), ([3], None),
])
def test_count_refuses_impossible_numbers(raw, expected):
    assert count(raw) == expected
