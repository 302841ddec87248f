"""The whole local stack for end-to-end tests, isolated so that it runs beside a developer's own
stack and beside other tests: its own state folder, port offset, RabbitMQ vhost and PostgreSQL
database, all removed afterwards.

``running_stack`` (session-scoped, registered in conftest.py) is one stack that every
end-to-end test shares: Prometheus scraping and evaluating every :data:`SCRAPE_INTERVAL`, the
simulator on the healthy scenario. A test that changes the scenario calls ``reset()`` first
(the ``healthy_stack`` fixture does), so it starts from a healthy platform with empty queues::

    def test_something(healthy_stack):
        healthy_stack.scenario("error-burst")
        healthy_stack.query('sum(rate(http_server_requests_seconds_count{status=~"5.."}[1m]))')

What ``reset()`` cannot undo: the simulated autoscalers scale down only after 5 minutes, so a
test that raises ``request_rate`` above about 13/s leaves more than 3 gateway pods behind for a
while (the tests here keep the default 10/s), and a backlog leaves KEDA's ml-inference at 5; and
counters only grow.

The stack reads its configuration from a session copy of build/ (``build_dir``), so that a test
can load other rules without touching the checkout: ``load_rules()`` replaces rule files there
and reloads Prometheus, and returns what it replaced, to load back afterwards. A test that
listens to the stack's receivers (``http://127.0.0.1:<9095 + offset>/<receiver>``) calls
``restart_empty("alertmanager")`` first, so that no notification state of an earlier test delays or
suppresses its own; ``restart_empty("prometheus")`` also forgets every series and alert of the
earlier tests (an SLO's windows hold their faults for days).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
import pytest
import requests

from medobs import replica, stack
from medobs.core.prometheus import Prometheus
from medobs.simulator.broker import DEAD_LETTER_QUEUE, QUEUE
from tests.conftest import REPO, medobs, require_binary
from tests.simulator_support import ADMIN_DSN, GUEST, MANAGEMENT, unique

#: Clear of the ports of test_stack.py (21000), test_alerts_stack.py (22000), a developer's own
#: stack (0) and the kernel's ephemeral range (32768 and up): 8080 + 13000 ... 10250 + 13000.
#: $MEDOBS_TEST_STACK_OFFSET moves it, for two test sessions on one machine.
PORT_OFFSET = int(os.environ.get("MEDOBS_TEST_STACK_OFFSET", "13000"))
#: Faster than the platform's 15s, so that scrapes and rule evaluations come quickly.
SCRAPE_INTERVAL = 5
UP_TIMEOUT = 120


class StackUnderTest:
    """``medobs stack`` in its own state folder, port offset, vhost and database."""

    def __init__(self, state_dir: Path, port_offset: int = PORT_OFFSET, build_dir: Path = REPO / "build"):
        self.vhost = unique("medobs-test")
        self.database = unique("medobs_test").replace("-", "_")
        self.build_dir = build_dir
        self.args = [
            "stack", "--state-dir", str(state_dir), "--port-offset", str(port_offset), "--build-dir", str(build_dir),
            "--rabbitmq-vhost", self.vhost, "--postgres-database", self.database,
            "--queue-include-vhost", self.vhost,
        ]
        self.stack = stack.Stack(state_dir, build_dir, port_offset, rabbitmq_vhost=self.vhost,
                                 postgres_database=self.database)
        self.prometheus = self.stack.url("prometheus")
        self.api = Prometheus(self.prometheus, timeout=10)
        self.control = self.stack.url("simulator-control")
        self.up_output = ""  # what the last ``up()`` printed: the health table and the addresses

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self, *flags: str) -> subprocess.CompletedProcess:
        for binary in ("prometheus", "prometheus-alertmanager", "prometheus-postgres-exporter",
                       "prometheus-redis-exporter", "prometheus-node-exporter"):
            require_binary(binary)
        result = medobs(*self.args, "up", *flags, check=True, timeout=UP_TIMEOUT + 60)
        self.up_output = result.stdout
        return result

    def started(self) -> list[psutil.Process]:
        """The processes ``up`` recorded, whether or not they still run."""
        found = []
        for record in sorted(self.stack.path("pids").glob("*.json")):
            data = json.loads(record.read_text())
            try:
                found.append(psutil.Process(data["pid"]))
            except psutil.NoSuchProcess:
                pass
        return found

    def down(self) -> list[psutil.Process]:
        """Stop the stack; returns the processes of ours still running afterwards (none, we hope)."""
        started = self.started()
        medobs(*self.args, "down", check=True)
        return [p for p in started if _alive(p)]

    @property
    def replica(self) -> replica.Replica:
        """The stack's PostgreSQL streaming replica."""
        return stack.REPLICA.replica(self.stack)

    def restart_empty(self, *components: str, wait: float = 0) -> None:
        """``components`` (``prometheus``, ``alertmanager``) again, with empty storage: no series,
        alert, group or notification log of before. ``wait``: seconds to wait for Prometheus to
        scrape every target."""
        self.stop_empty(*components)
        self.start(wait)

    def stop_empty(self, *components: str) -> None:
        """Stop ``components`` and remove their storage; ``start()`` starts them again, empty."""
        for name in components:
            stack.stop(self.stack, stack.component(name))
            shutil.rmtree(self.stack.path("data", name), ignore_errors=True)

    def start(self, wait: float = 0) -> None:
        """Start whatever of the stack is not running; ``wait``: as in :meth:`restart_empty`."""
        medobs(*self.args, "up", "--scrape-interval", f"{SCRAPE_INTERVAL}s", "--wait", str(wait), check=True,
               timeout=UP_TIMEOUT + wait)

    def remove_backends(self) -> None:
        """Delete the vhost (with its queues) and the database the simulator created."""
        requests.delete(f"{MANAGEMENT}/api/vhosts/{quote(self.vhost, safe='')}", auth=GUEST, timeout=30)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    # -- the simulator -------------------------------------------------------------------------

    def scenario(self, name: str | None = None, **knobs: Any) -> dict[str, Any]:
        """``POST /scenario`` on the simulator's control endpoint; returns the new state."""
        body: dict[str, Any] = {"knobs": knobs} if knobs else {}
        if name:
            body["name"] = name
        answer = requests.post(f"{self.control}/scenario", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def reset(self) -> None:
        """The healthy scenario, and medical_data and its DLQ emptied."""
        self.scenario("healthy")
        for name in (QUEUE, DEAD_LETTER_QUEUE):
            requests.delete(f"{MANAGEMENT}/api/queues/{quote(self.vhost, safe='')}/{name}/contents",
                            auth=GUEST, timeout=10).raise_for_status()

    # -- Prometheus ----------------------------------------------------------------------------

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query (now, or at the Unix time ``at``): ``[{"metric": {...}, "value": [t, "v"]}]``."""
        return self.api.query(expr, at)

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The single value of ``expr``, or None when it has no result."""
        result = self.query(expr, at)
        assert len(result) <= 1, f"{expr} has {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def load_rules(self, files: dict[str, str]) -> dict[str, str]:
        """Write ``{path under build/: text}`` into the stack's build folder and reload Prometheus;
        returns the texts they replaced (``load_rules(returned)`` loads those back).

        Prometheus carries the state of an alert whose rule changed over a reload; here the
        replaced files are unloaded first, so that every alert they hold starts inactive and each
        ``for`` counts from now.
        """
        paths = {name: self.build_dir / name for name in files}
        replaced = {name: path.read_text() for name, path in paths.items() if path.exists()}
        for path in paths.values():
            path.unlink(missing_ok=True)
        self.reload_prometheus()
        for name, path in paths.items():
            path.write_text(files[name])
        self.reload_prometheus()
        return replaced

    def reload_prometheus(self) -> None:
        """``POST /-/reload`` (the stack runs Prometheus with --web.enable-lifecycle); answers once loaded."""
        requests.post(f"{self.prometheus}/-/reload", timeout=60).raise_for_status()

    def rules(self) -> list[dict[str, Any]]:
        """Every rule Prometheus has loaded, with its group's ``file`` added."""
        return [{**rule, "file": group["file"]} for group in self.api.rules() for rule in group["rules"]]

    def targets(self) -> list[dict[str, Any]]:
        return self.api.targets()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(condition, timeout: float, interval: float = 0.5, what: str = "condition"):
    """Poll ``condition()`` until it is truthy and return it; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout:.0f}s (last: {value!r})")
        time.sleep(interval)


def replication_on_primary() -> tuple[set[str], set[str]]:
    """The shared primary's walsenders (by application name) and permanent replication slots."""
    with psycopg.connect(ADMIN_DSN) as primary:
        senders = {row[0] for row in primary.execute("SELECT application_name FROM pg_stat_replication")}
        slots = {row[0] for row in primary.execute("SELECT slot_name FROM pg_replication_slots WHERE NOT temporary")}
    return senders, slots


def assert_primary_left_as_it_was(standby: replica.Replica, slots_before: set[str]) -> None:
    """No walsender of ``standby`` left on the primary (it ends within seconds of the replica), no
    permanent slot added (one would keep WAL forever), and the replica's copy removed."""
    wait_until(lambda: standby.application_name not in replication_on_primary()[0], timeout=15,
               what=f"the primary's walsender for {standby.application_name} ending")
    assert replication_on_primary()[1] <= slots_before
    assert not standby.data_dir.exists()


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory) -> Iterator[StackUnderTest]:
    """The whole stack on a session copy of build/, up with every target healthy, shared by the
    session; stopped (and checked to leave no process behind, and the shared PostgreSQL as it was)
    and its vhost and database removed at the end."""
    build = tmp_path_factory.mktemp("build")
    shutil.copytree(REPO / "build", build, dirs_exist_ok=True)
    under_test = StackUnderTest(tmp_path_factory.mktemp("stack") / "state", build_dir=build)
    slots_before = replication_on_primary()[1]
    try:
        under_test.up("--scrape-interval", f"{SCRAPE_INTERVAL}s", "--wait", str(UP_TIMEOUT))
        yield under_test
    finally:
        left = under_test.down()
        under_test.remove_backends()
    assert not left, f"`medobs stack down` left processes running: {left}"
    assert_primary_left_as_it_was(under_test.replica, slots_before)


@pytest.fixture
def healthy_stack(running_stack: StackUnderTest) -> StackUnderTest:
    """The shared stack, back on the healthy scenario with empty queues."""
    running_stack.reset()
    return running_stack
