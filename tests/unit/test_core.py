"""The core's shared plumbing: durations, the PromQL reader, the HTTP server's backlog."""

import socket
from http.server import BaseHTTPRequestHandler

import pytest

from medobs.core import durations, promql
from medobs.core.runtime import Server


def test_durations_in_prometheus_syntax():
    assert durations.parts("1h30m") == [(1, "h"), (30, "m")]
    assert durations.parse("500ms") == 0.5 and durations.parse("1y") == 365 * 86400
    assert durations.seconds("2d19h12m") == 241920 and durations.render(241920) == "2d19h12m"
    assert durations.seconds("0s") == 0 and durations.render(0) == "0s"
    assert [durations.humanize(s) for s in (0.4, 52, 259, 3600)] == ["0.4s", "52s", "4m19s", "1h"]
    for bad in ("", "5", "1h5", "m", "-1h", "30x", "1m1h", "1.5h"):
        with pytest.raises(ValueError, match="is not a duration"):
            durations.parse(bad)
    with pytest.raises(ValueError, match="not a whole number of seconds"):
        durations.seconds("1500ms")


def test_promql_reader():
    tree = promql.parse('sum(rate(a_total{x="1"}[5m])) / avg_over_time((b)[10m:1m]) + irate(c[1m]) + d')
    assert [promql.metric_name(s) for s in promql.selectors(tree)] == ["a_total", "b", "c", "d"]
    assert promql.range_functions(tree) == [("rate", 300.0), ("avg_over_time", 600.0), ("irate", 60.0)]
    assert promql.metric_names('{__name__="up", job="x"} and on () absent(e)') == {"up", "e"}
    assert promql.plain_selector('x_total{role="dlq", q=~"a\\\\.b"}') == ("x_total", [("role", "=", "dlq"), ("q", "=~", "a\\.b")])
    for bad in ("rate(x[5m])", "x offset 5m", '{a="b"}', "x{"):
        with pytest.raises(ValueError, match="is not a series selector"):
            promql.plain_selector(bad)
    with pytest.raises(ValueError):
        promql.parse("sum(rate(x[5m])")


def test_the_server_queues_a_burst_of_connections():
    """With Python's default backlog of 5, the connections of a burst beyond the first few wait
    for the kernel's SYN retries (a second or more) while the server is busy; here none does."""
    server = Server(("127.0.0.1", 0), BaseHTTPRequestHandler)  # listening, not accepting yet
    clients = []
    try:
        for _ in range(200):
            clients.append(socket.create_connection(server.server_address[:2], timeout=0.5))
    finally:
        for client in clients:
            client.close()
        server.server_close()
    assert len(clients) == 200
