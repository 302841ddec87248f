"""``medobs simulate`` as a user and the local stack run it: help, one-line errors, a background
process that serves, changes scenario on request and stops cleanly on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys

import psycopg
import pytest
import requests

from medobs import UserError
from medobs.core.catalog import gateway as catalog
from medobs.simulator.cli import LISTENERS
from medobs.simulator.scenarios import SCENARIOS
from tests.conftest import REPO, free_port, medobs
from tests.simulator_support import (
    ADMIN_DSN,
    private_database,
    private_vhost,
    sample_sum,
    scrape,
    wait_for,
)

SECRET = "s3cret-do-not-print"


def test_help_lists_every_scenario_and_knob():
    result = medobs("simulate", "--help", check=True)
    for name in SCENARIOS:
        assert name in result.stdout
    for knob in SCENARIOS["healthy"].knobs.as_dict():
        assert knob in result.stdout
    assert "--gateway-listen" in result.stdout and "POST" in result.stdout


def test_list_scenarios_shows_what_each_changes():
    lines = medobs("simulate", "--list-scenarios", check=True).stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(SCENARIOS)
    assert "'error_ratio': 0.25" in next(line for line in lines if line.startswith("error-burst"))


def ports():
    """Every listener on an ephemeral port (never the platform's)."""
    return [arg for flag in [*(f for f, _, _ in LISTENERS), "control-listen"] for arg in (f"--{flag}", str(free_port()))]


def nowhere():
    """Ephemeral ports and unreachable backends: should a mistake go unnoticed, the run fails at
    once instead of binding the platform's ports or touching the shared broker and database."""
    return [*ports(), "--amqp-url", "amqp://127.0.0.1:1/", "--pg-dsn", "postgresql://postgres@127.0.0.1:1/none"]


@pytest.mark.parametrize("args, message", [
    (["--scenario", "nope"], "invalid choice: 'nope'"),
    (["--set", "error_rate=1"], "unknown knob 'error_rate'"),
    (["--set", "error_ratio"], "is not KNOB=VALUE"),
    (["--set", "error_ratio=2"], "share between 0 and 1"),
    (["--gateway-listen", "here"], "is not HOST:PORT"),
    (["--amqp-url", f"http://u:{SECRET}@127.0.0.1/"], "is not amqp://HOST:PORT/"),
    (["--amqp-url", "amqp://127.0.0.1:1/medical"], "pass it as --rabbitmq-vhost"),
    (["--pg-dsn", "nonsense"], "not a PostgreSQL connection string"),
])
def test_usage_mistakes_are_one_line(args, message):
    result = medobs("simulate", *nowhere(), *args, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_unreachable_rabbitmq_is_one_line_without_the_password():
    with private_database() as dsn:
        result = medobs("simulate", *ports(), "--pg-dsn", dsn, "--amqp-url", f"amqp://medobs:{SECRET}@127.0.0.1:1/",
                        timeout=60)
    assert result.returncode == 2
    assert "cannot connect to RabbitMQ at amqp://127.0.0.1:1 vhost /" in result.stderr
    assert "(start RabbitMQ or pass --amqp-url)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_unreachable_postgresql_is_one_line_without_the_password():
    result = medobs("simulate", *nowhere(), "--pg-dsn", f"postgresql://postgres:{SECRET}@127.0.0.1:1/medical",
                    timeout=60)
    assert result.returncode == 2
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/medical" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_a_port_in_use_is_one_line_naming_it():
    with socket.socket() as taken, private_vhost() as vhost, private_database() as dsn:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = medobs("simulate", *ports(), "--gateway-listen", f"127.0.0.1:{port}",
                        "--rabbitmq-vhost", vhost, "--pg-dsn", dsn, timeout=60)
    assert result.returncode == 2
    assert f"gateway: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
def test_runs_in_the_background_changes_scenario_and_stops_on_sigterm():
    gateway, control = free_port(), free_port()
    with private_vhost() as vhost, private_database() as dsn:
        process = subprocess.Popen(
            [sys.executable, "-m", "medobs.cli", "simulate", *ports(), "--gateway-listen", str(gateway),
             "--control-listen", str(control),
             "--rabbitmq-vhost", vhost, "--pg-dsn", dsn, "--seed", "3", "--set", "request_rate=25"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RABBITMQ_PASSWORD": "guest", "RABBITMQ_USER": "guest"},
        )
        try:
            wait_for(lambda: _answers(f"http://127.0.0.1:{control}/healthz"), timeout=30, interval=0.2)
            assert requests.get(f"http://127.0.0.1:{control}/scenario", timeout=5).json()["name"] == "healthy"
            actuator = f"http://127.0.0.1:{gateway}/actuator/prometheus"
            wait_for(lambda: _requests(scrape(actuator)) >= 50, timeout=30)
            assert _errors(scrape(actuator)) == 0  # healthy: no 5xx at all

            bad = requests.post(f"http://127.0.0.1:{control}/scenario", data=b"{oops", timeout=5)
            assert bad.status_code == 400 and "error" in bad.json()
            changed = requests.post(f"http://127.0.0.1:{control}/scenario", timeout=5,
                                    json={"name": "error-burst", "knobs": {"request_rate": 25}})
            assert changed.json()["knobs"]["error_ratio"] == 0.25
            before = scrape(actuator)
            wait_for(lambda: _requests(scrape(actuator)) - _requests(before) >= 200, timeout=40)
            after = scrape(actuator)
            share = (_errors(after) - _errors(before)) / (_requests(after) - _requests(before))
            assert share == pytest.approx(0.25, abs=0.03)  # requests in flight at the switch blur it slightly

            status = requests.get(f"http://127.0.0.1:{control}/status", timeout=10).json()
            assert status["scenario"]["name"] == "error-burst+custom"
            assert status["rabbitmq"]["publisher_connected"] and status["rabbitmq"]["published"] > 0
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert "guest" not in out + err  # credentials never reach the log
        assert "gateway on http://127.0.0.1:" in err and "scenario error-burst+custom" in err
        database = dsn.rsplit("/", 1)[1]
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            left = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()[0]
        assert left == 0  # every pooled connection closed


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def _requests(found):
    return sample_sum(found, catalog.HTTP_SERVER_REQUESTS.count, application="api-gateway")


def _errors(found):
    return sample_sum(found, catalog.HTTP_SERVER_REQUESTS.count, outcome="SERVER_ERROR")


def test_port_offset_moves_every_default_port():
    from medobs.cli import parser
    from medobs.simulator.cli import config_from

    config = config_from(parser().parse_args(["simulate", "--port-offset", "100"]))
    assert (config.gateway_listen, config.tfserving_listen, config.control_listen) == (
        ("127.0.0.1", 8180), ("127.0.0.1", 8601), ("127.0.0.1", 8189))
    assert (config.kubelet_listen, config.kube_state_metrics_listen, config.cert_manager_listen) == (
        ("127.0.0.1", 10350), ("127.0.0.1", 8190), ("127.0.0.1", 9502))
    assert config.scenario == "healthy" and config.broker.vhost == "/"


def test_port_offset_from_the_environment(monkeypatch):
    from medobs.cli import parser
    from medobs.simulator.cli import config_from

    plain, zero = parser().parse_args(["simulate"]), parser().parse_args(["simulate", "--port-offset", "0"])
    monkeypatch.setenv("MEDOBS_PORT_OFFSET", "200")
    assert config_from(plain).gateway_listen == ("127.0.0.1", 8280)
    assert config_from(zero).gateway_listen == ("127.0.0.1", 8080)  # the flag wins
    monkeypatch.setenv("MEDOBS_PORT_OFFSET", "lots")
    with pytest.raises(UserError, match="MEDOBS_PORT_OFFSET must be a whole number, not 'lots'"):
        config_from(plain)
