"""Scenarios, knobs and reproducible chance: exact shares, validation, the control semantics."""

import pytest

from medobs.simulator import control
from medobs.simulator.chance import Dice, Share
from medobs.simulator.scenarios import SCENARIOS, Knobs, parse_assignment, scenario
from medobs.simulator.traffic import MIX, Traffic


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.25, 1 / 3, 0.5, 0.9, 1.0])
def test_share_picks_exactly_the_ratio_at_any_point(ratio):
    share = Share(seed=3, name="errors", ratio=ratio)
    picked = 0
    for n in range(1, 2001):
        picked += share.pick()
        assert abs(picked - n * ratio) < 1.0  # never more than one event off the exact share


def test_share_follows_a_ratio_change_from_then_on():
    share = Share(seed=1, name="errors", ratio=0.0)
    assert not any(share.pick() for _ in range(500))
    share.ratio = 0.2
    assert sum(share.pick() for _ in range(500)) in (99, 100, 101)


def test_chance_is_reproducible_from_the_seed_and_differs_between_seeds():
    def run(seed):
        share, dice = Share(seed, "poison", 0.3), Dice(seed, "latency")
        return [share.pick() for _ in range(50)], [dice.jitter() for _ in range(50)]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_traffic_plan_is_reproducible_and_follows_the_mix():
    def plan(seed, n=2000):
        traffic = Traffic("http://127.0.0.1:1", lambda: Knobs(request_rate=0), seed)
        traffic._studies.extend([5, 6, 7])
        return [traffic.next_request() for _ in range(n)]

    first = plan(4)
    assert first == plan(4)
    assert first != plan(5)
    kinds = {
        "upload": sum(r.method == "POST" and r.path == "/api/v1/studies" for r in first),
        "predict": sum(r.path == "/api/v1/inference/predict" for r in first),
        "missing": sum(r.path.endswith("/999999999") for r in first),
        "findings": sum(r.path.endswith("/findings") for r in first),
    }
    for kind, count in kinds.items():
        assert count / len(first) == pytest.approx(MIX[kind], abs=0.03), kind
    batch_sizes = {len(r.body["instances"]) for r in first if r.path.endswith("predict")}
    assert batch_sizes == {1, 2, 3, 4}


def test_every_named_scenario_changes_what_its_summary_says():
    healthy = Knobs()
    changed = {name: {k for k, v in s.knobs.as_dict().items() if v != healthy.as_dict()[k]}
               for name, s in SCENARIOS.items()}
    assert changed == {
        "healthy": set(),
        "error-burst": {"error_ratio"},
        "latency-regression": {"extra_latency"},
        "consumer-stall": {"consumer_stalled"},
        "poison-messages": {"poison_ratio"},
        "model-unavailable": {"model_available"},
        "db-saturation": {"db_hold_seconds"},
        "gateway-replica-down": {"gateway_replicas_down"},
        "crash-loop": {"crash_looping"},
        "certificate-expiring": {"certificate_days_left"},
    }


@pytest.mark.parametrize("changes, message", [
    ({"error_rate": 0.1}, "unknown knob 'error_rate'"),
    ({"error_ratio": 1.5}, "share between 0 and 1"),
    ({"error_ratio": "lots"}, "takes a number"),
    ({"extra_latency": -1}, "number >= 0"),
    ({"request_rate": True}, "number >= 0"),
    ({"consumer_stalled": "maybe"}, "true or false"),
    ({"gateway_replicas_down": 1.5}, "whole number >= 0"),
    ({"gateway_replicas_down": "-1"}, "whole number >= 0"),
])
def test_bad_knobs_are_refused_with_the_knob_named(changes, message):
    with pytest.raises(ValueError, match=message):
        Knobs().with_changes(changes)


def test_knobs_from_the_command_line_are_converted():
    knobs = Knobs().with_changes(dict(parse_assignment(a) for a in
                                      ["consumer_stalled=true", "error_ratio=0.4", "gateway_replicas_down=2"]))
    assert knobs.consumer_stalled is True and knobs.error_ratio == 0.4 and knobs.gateway_replicas_down == 2
    with pytest.raises(ValueError, match="KNOB=VALUE"):
        parse_assignment("error_ratio")
    with pytest.raises(ValueError, match="unknown scenario 'nope'; scenarios: healthy, error-burst"):
        scenario("nope")


class Target:
    def __init__(self):
        self.name, self.knobs = "healthy", Knobs()

    def apply(self, name, knobs):
        self.name, self.knobs = name, knobs

    def status(self):
        return {}


def test_control_changes_by_name_by_knobs_or_both():
    target = Target()
    assert control.change(target, {"name": "error-burst"}) == {
        "name": "error-burst", "knobs": SCENARIOS["error-burst"].knobs.as_dict()}
    state = control.change(target, {"knobs": {"request_rate": 20}})
    assert state["name"] == "custom" and state["knobs"]["error_ratio"] == 0.25 and state["knobs"]["request_rate"] == 20
    state = control.change(target, {"name": "healthy", "knobs": {"poison_ratio": 0.5}})
    assert state["name"] == "healthy+custom"
    assert state["knobs"] == {**Knobs().as_dict(), "poison_ratio": 0.5}


@pytest.mark.parametrize("body, message", [
    (None, "expected"),
    ({}, "expected"),
    ({"scenario": "healthy"}, "expected"),
    ({"knobs": [1]}, "must be an object"),
    ({"name": "nope"}, "unknown scenario"),
])
def test_control_refuses_malformed_changes_and_keeps_the_state(body, message):
    target = Target()
    with pytest.raises(ValueError, match=message):
        control.change(target, body)
    assert target.name == "healthy" and target.knobs == Knobs()
