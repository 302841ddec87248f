"""Issue 18's "the healthy local stack fires only the heartbeat", on the shared stack of a machine
without a GPU (tests/stack_support.py): with the production rules shortened as the alerts
end-to-end test shortens them (every ``for`` and window at most a minute, so that everything that
would ever fire on a healthy stack fires within the test), on a Prometheus started empty, nothing
but the heartbeat (severity ``none``, matched by severity so a rename does not matter) is firing
or pending once the first evaluation cycles are over, and through two minutes after. The file's
name puts it first among the end-to-end tests (they run in file order on one worker): on the stack
as `make up` leaves it, before other tests' faults leave scaled-out deployments behind."""

from __future__ import annotations

import time

from alerts import build, thresholds
from medobs.core.catalog import gpu
from tests.stack_support import SCRAPE_INTERVAL, UP_TIMEOUT, StackUnderTest

FAST = thresholds.shortened(thresholds.DEFAULT, divisor=20, longest="1m")
#: The first evaluation cycles: two scrapes for a rate(), one evaluation, on a loaded machine.
SETTLE = 4 * SCRAPE_INTERVAL
#: Longer than the fast rules' longest ``for`` plus their longest window.
WATCH = 150


def heartbeat(alert: dict[str, str]) -> bool:
    return alert.get("severity") == "none"


def alerts(stack: StackUnderTest) -> list[dict[str, str]]:
    """Every alert Prometheus has firing or pending, its labels with ``alertstate``."""
    return [row["metric"] for row in stack.query("ALERTS")]


def test_the_healthy_stack_without_a_gpu_fires_only_the_heartbeat(healthy_stack):
    production = healthy_stack.load_rules(build.rule_files(FAST))
    try:
        healthy_stack.restart_empty("prometheus", wait=UP_TIMEOUT)  # no earlier test's fault in any window
        assert healthy_stack.value(f'{gpu.NVML_UNAVAILABLE.name}{{job="gpu"}}') == 1, "this machine has a GPU"
        assert healthy_stack.value(f'{gpu.UP.name}{{job="gpu"}}') == 1  # the stack's --allow-no-gpu
        fors = [rule.get("duration", 0) for rule in healthy_stack.rules() if "/alerts-" in rule["file"]]
        assert fors and max(fors) <= 60, "the fast rules are not loaded"
        time.sleep(SETTLE)
        watch_until, seen = time.monotonic() + WATCH, []
        while time.monotonic() < watch_until:
            now = alerts(healthy_stack)
            others = [a for a in now if not heartbeat(a)]
            assert not others, f"on the healthy stack, firing or pending besides the heartbeat: {others}"
            seen = [a for a in now if heartbeat(a) and a["alertstate"] == "firing"]
            time.sleep(SCRAPE_INTERVAL)
        assert len(seen) == 1, f"the heartbeat is not firing once: {seen}"
    finally:
        healthy_stack.load_rules(production)
