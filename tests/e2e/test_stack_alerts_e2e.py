"""The alerts end to end (issue 8's acceptance): on the shared local stack (real Prometheus and
Alertmanager on loopback, tests/stack_support.py) with a webhook receiver this test starts where
the stack's receivers post, the simulator injects poison messages, then a consumer stall and a
model outage; the dead-letter and backlog alerts reach the ticket receiver, the model outage
reaches the paging receiver, each within the bound stated in :func:`injected`, and nothing else is
delivered but what :func:`healthy` (the healthy stack's own alerts) and :data:`ALLOWED` account
for, each matched by name, receiver and labels (a second dead-letter queue would fail the test).

The rules are the production rules with shorter durations only (:data:`FAST`:
``alerts/thresholds.py``'s ``shortened(DEFAULT, 20, "1m")``, rendered by ``alerts/build.py`` like
the production files): every ``for`` a twentieth of production and at most a minute
(QueueBacklogNotDraining 10m -> 30s, ModelNotAvailable 2m -> 6s, PostgresBackupMetricsMissing 1h
-> 1m), every window at most a minute (so that a rate still spans 12 scrapes and 4 inference
probes); thresholds, expressions, labels and routing are the production ones (``test_alerts_rules``
checks that the two renderings differ in durations only). The SLO rules stay as built. The
stack's Alertmanager runs the production routing: group_wait 30 s is part of every bound.

Timeline: the fast rules, then until the stack is quiet (an earlier test's backlog keeps KEDA at
its maximum for 5 minutes); then Prometheus and Alertmanager restarted with empty storage, so that
no earlier test's fault is left in any window (an SLO's windows hold one for days) and no
notification state of before delays ours: on the healthy stack exactly :func:`healthy` fires;
poison messages; once the dead-letter alert fires, the consumer stall and the model outage
together (the stalled worker no longer consumes, so the outage adds nothing to the queue); then
:data:`LISTEN` seconds in which every fast rule, its ``for`` and its window at most a minute each,
has had time to fire and be delivered. Afterwards the stack is healthy again, with the production
rules (every alert inactive again) and a fresh Alertmanager.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from alerts import alertmanager, build, thresholds
from alerts.alertmanager import HEARTBEAT, NULL, PAGING, TICKET
from medobs.core.catalog import gpu, platform
from medobs.core.durations import seconds
from medobs.core.scrape_jobs import NAMESPACE
from medobs.simulator.broker import DEAD_LETTER_QUEUE, QUEUE
from medobs.simulator.scenarios import SCENARIOS, Knobs
from medobs.simulator.tfserving import MODEL
from tests.stack_support import SCRAPE_INTERVAL, UP_TIMEOUT, StackUnderTest, wait_until
from tests.integration.test_alerts_alertmanager import WebhookReceiver

FAST = thresholds.shortened(thresholds.DEFAULT, divisor=20, longest="1m")
GROUP_WAIT = seconds(alertmanager.route()["group_wait"])
#: From a change in the platform to the rule seeing it: the broker's statistics or the sidecar's
#: refresh, one scrape, one evaluation (5 s each on the test stack).
LAG = 3 * SCRAPE_INTERVAL
#: What a loaded two-core machine may add.
SLACK = 45
#: How long the test listens after the stall and the outage begin: longer than every bound below,
#: and than a fast rule's longest ``for`` plus its longest window plus LAG and group_wait.
LISTEN = 180
#: Prometheus's --rules.alert.resend-delay: a freshly started Prometheus evaluates before its
#: notifier knows the Alertmanager, so what fires at once (the MedobsHeartbeat) reaches it a resend later.
RESEND = 60
#: Longest wait for the stack to be quiet before the first injection: the simulated autoscalers
#: scale down 5 minutes after the load goes.
QUIET_TIMEOUT = 360
SEVERITY_OF = {PAGING: "critical", TICKET: "warning"}


@dataclass(frozen=True)
class Delivery:
    """Alerts named ``alertname`` with ``labels`` among their labels, delivered to ``receiver``."""

    alertname: str
    receiver: str
    labels: Mapping[str, str]
    why: str

    def matches(self, receiver: str, labels: Mapping[str, str]) -> bool:
        return (receiver == self.receiver and labels.get("alertname") == self.alertname
                and self.labels.items() <= labels.items())


@dataclass(frozen=True)
class Expected(Delivery):
    """A delivery that must come within ``bound`` seconds of the injection ``after`` (``start``:
    the fast rules on an empty Prometheus and Alertmanager)."""

    after: str
    bound: float


def healthy(stack: StackUnderTest) -> list[Expected]:
    """What the healthy local stack fires, all of it true alerts: the MedobsHeartbeat, and what its
    exporters report about this machine."""
    found = [Expected(
        "MedobsHeartbeat", HEARTBEAT, {"service": "monitoring"},
        "the dead man's switch: always firing, to the heartbeat receiver only (group_wait 0)",
        after="start", bound=LAG + RESEND + SLACK,
    )]
    if stack.value(f'{gpu.UP.name}{{job="gpu"}}') == 0:
        found.append(Expected(
            "ExporterCollectionFailing", TICKET,
            {"job": "gpu", "instance": stack.stack.address("gpu"), "exporter": "medobs-gpu", "service": "gpu"},
            "no GPU on this machine: the GPU exporter reports medobs_gpu_up 0 by design, a true alert "
            "(on a GPU node it means NVML is broken)",
            after="start", bound=LAG + seconds(FAST.platform.exporter_down_for) + GROUP_WAIT + SLACK,
        ))
    if not stack.query(platform.BACKUP_LAST_SUCCESS.name):
        found.append(Expected(
            "PostgresBackupMetricsMissing", TICKET, {"service": "postgresql-backup"},
            "no backup job runs `medobs backup-metrics` into the stack's textfile folder: a true alert",
            after="start", bound=LAG + seconds(FAST.platform.backup_missing_for) + GROUP_WAIT + SLACK,
        ))
    return found


def injected(stack: StackUnderTest) -> list[Expected]:
    """What the injected faults must deliver, each alert of them on the stack's own queues and model."""
    work_queue = {"vhost": stack.vhost, "queue": QUEUE, "service": "rabbitmq"}
    return [
        Expected(
            "DeadLetterQueueReceivingMessages", TICKET, {**work_queue, "queue": DEAD_LETTER_QUEUE, "role": "dlq"},
            "the acceptance: the worker rejects poisoned studies into medical_data.dlq (no `for`)",
            after="poison", bound=LAG + GROUP_WAIT + SLACK,
        ),
        Expected(
            "QueueBacklogNotDraining", TICKET, work_queue,
            "the acceptance: 2 studies/s pile up in medical_data, past KEDA's 10 within seconds",
            after="stall", bound=LAG + seconds(FAST.queue.backlog_for) + GROUP_WAIT + SLACK,
        ),
        Expected(
            "ModelNotAvailable", PAGING, {"model": MODEL, "service": "ml-inference"},
            "the acceptance: TF Serving reports the model's only version END",
            after="outage", bound=LAG + seconds(FAST.inference.model_unavailable_for) + GROUP_WAIT + SLACK,
        ),
        Expected(
            "QueueUnackedMessagesStuck", TICKET, work_queue,
            "what a stall is: the worker holds its 10 prefetched studies unacknowledged and acks none "
            "(it fires once the last ack has left the window)",
            after="stall",
            bound=LAG + seconds(FAST.queue.unacked_window) + seconds(FAST.queue.unacked_for) + GROUP_WAIT + SLACK,
        ),
        Expected(
            "HpaAtMaxReplicas", TICKET,
            {"namespace": NAMESPACE, "horizontalpodautoscaler": "keda-hpa-ml-inference-scaler", "service": "kubernetes"},
            "the backlog drives KEDA's ml-inference autoscaler to its maximum of 5: no capacity left to add",
            # KEDA reaches 5 replicas at 41 ready messages (about 20 s) and acts every 15 s.
            after="stall", bound=20 + 15 + LAG + seconds(FAST.platform.hpa_for) + GROUP_WAIT + SLACK,
        ),
    ]


#: May be delivered, but need not be. The SLO rules are loaded as built; Prometheus starts empty,
#: so their windows hold this run only and the faults' share of the events decides.
ALLOWED = (
    Delivery(
        "MlInferenceAvailabilityBudgetBurn", PAGING, {"service": "ml-inference", "slo": "availability"},
        "the outage fails every predict, burning the inference availability SLO's budget; whether a "
        "burn-rate tier fires before the listening ends is the SLO rules' business (tests/test_slo_*). Its "
        "warnings are inhibited by ModelNotAvailable (critical, same service)",
    ),
    Delivery(
        "StudyDeadLetterBudgetBurn", PAGING, {"service": "study-processing", "slo": "dead-letters"},
        "the poisoned studies burn the dead-letter SLO's budget (as above)",
    ),
    Delivery(
        "StudyDeadLetterBudgetBurn", TICKET, {"service": "study-processing", "slo": "dead-letters"},
        "the same, its slower tiers, unless its own page inhibits them first",
    ),
)


def routed(labels: Mapping[str, str]) -> str:
    """The receiver the stack's routing gives an alert: the MedobsHeartbeat's own, else by severity."""
    return HEARTBEAT if labels["alertname"] == "MedobsHeartbeat" else alertmanager.SEVERITY_RECEIVERS[labels["severity"]]


def unexplained(alerts: Iterable[tuple[str, Mapping[str, str]]], explained: list[Delivery]) -> list[Mapping[str, str]]:
    """The labels of each ``(receiver, labels)`` that no delivery in ``explained`` matches."""
    return [labels for receiver, labels in alerts if not any(d.matches(receiver, labels) for d in explained)]


def off_baseline(baseline: list[Expected], alerts: list[dict[str, str]]) -> tuple[list[str], list[Mapping[str, str]]]:
    """How Prometheus's ``alerts`` (ALERTS labels) differ from ``baseline``: the names of the
    expected ones none matches, and the labels of those no expected one matches."""
    return ([e.alertname for e in baseline if not any(e.matches(routed(a), a) for a in alerts)],
            unexplained(((routed(a), a) for a in alerts), baseline))


def firing(stack: StackUnderTest) -> list[dict[str, str]]:
    """Labels of every alert Prometheus has firing or pending, with ``alertstate``."""
    return [row["metric"] for row in stack.query("ALERTS")]


def changed_knobs(name: str) -> dict[str, Any]:
    """The knobs a named scenario changes from healthy."""
    healthy_knobs = Knobs().as_dict()
    return {knob: value for knob, value in SCENARIOS[name].knobs.as_dict().items() if value != healthy_knobs[knob]}


@dataclass
class Deliveries:
    """What the test's webhook receiver got, alert by alert."""

    receiver: WebhookReceiver

    def alerts(self) -> list[tuple[str, float, dict[str, Any]]]:
        """``(receiver, arrival, alert)`` for every alert of every notification so far."""
        count = len(self.receiver.arrived)
        return [
            (path.lstrip("/"), at, alert)
            for (path, _, body), at in zip(self.receiver.received[:count], self.receiver.arrived[:count])
            for alert in body.get("alerts", [])
        ]

    def names(self) -> set[tuple[str, str]]:
        """``(alertname, receiver)`` of everything delivered so far."""
        return {(alert["labels"]["alertname"], receiver) for receiver, _, alert in self.alerts()}

    def first(self, expected: Expected) -> float | None:
        """When ``expected`` first arrived firing at its receiver, or None."""
        for receiver, at, alert in self.alerts():
            if alert["status"] == "firing" and expected.matches(receiver, alert["labels"]):
                return at
        return None


def wait_until_quiet(stack: StackUnderTest) -> None:
    """Until Prometheus has nothing firing or pending but the healthy stack's own alerts and SLO
    burn-rate alerts (an earlier test's, in windows that the restart with empty storage clears)."""
    time.sleep(2 * SCRAPE_INTERVAL)  # every group evaluated the new rules
    quiet_by = time.monotonic() + QUIET_TIMEOUT
    while noisy := [a for a in unexplained(((routed(a), a) for a in firing(stack)), healthy(stack)) if "slo" not in a]:
        assert time.monotonic() < quiet_by, f"firing or pending on the healthy stack (false positives?): {noisy}"
        time.sleep(SCRAPE_INTERVAL)


@dataclass
class AlertingStack:
    """The shared stack with the fast rules, on a Prometheus and an Alertmanager that started
    empty at ``started`` (``time.time()``), and the test's receiver."""

    stack: StackUnderTest
    receiver: WebhookReceiver
    started: float


@pytest.fixture
def alerting_stack(healthy_stack: StackUnderTest) -> Iterator[AlertingStack]:
    """The shared stack, quiet, with the fast rules on an empty Prometheus and Alertmanager and the
    test's receiver on the port the stack's receivers post to (listening before they start);
    healthy with the production rules and a fresh Alertmanager again afterwards."""
    production = receiver = None
    try:
        production = healthy_stack.load_rules(build.rule_files(FAST))
        wait_until_quiet(healthy_stack)
        healthy_stack.stop_empty("prometheus", "alertmanager")
        receiver = WebhookReceiver(port=alertmanager.LOCAL_WEBHOOK_PORT + healthy_stack.stack.port_offset)
        started = time.time()
        healthy_stack.start(wait=UP_TIMEOUT)
        yield AlertingStack(healthy_stack, receiver, started)
    finally:
        healthy_stack.reset()
        if production:
            healthy_stack.load_rules(production)
        healthy_stack.restart_empty("alertmanager")
        if receiver:
            receiver.close()


def test_injected_faults_reach_their_receivers_within_bounds_and_nothing_else_is_delivered(alerting_stack):
    stack, receiver = alerting_stack.stack, alerting_stack.receiver
    injected_at = {"start": alerting_stack.started}
    loaded = {rule["name"]: rule["duration"] for rule in stack.rules() if "/alerts-" in rule["file"]}
    assert loaded["QueueBacklogNotDraining"] == seconds(FAST.queue.backlog_for) == 30, "the fast rules are not loaded"
    deliveries = Deliveries(receiver)

    # the baseline: on the healthy stack exactly its own alerts fire (or are pending), once each;
    # the empty Prometheus's first evaluations may still miss a recording rule (rate() needs two scrapes)
    baseline = healthy(stack)
    settled_by = time.monotonic() + LAG + SLACK
    while (off := off_baseline(baseline, firing(stack))) != ([], []):
        assert time.monotonic() < settled_by, f"on the healthy stack, missing: {off[0]}; firing or pending besides: {off[1]}"
        time.sleep(1)
    for e in baseline:
        assert len([a for a in firing(stack) if e.matches(routed(a), a)]) == 1, f"{e.alertname} more than once"
    expected = [*baseline, *injected(stack)]

    injected_at["poison"] = time.time()
    stack.scenario(**changed_knobs("poison-messages"))
    wait_until(lambda: any(a["alertname"] == "DeadLetterQueueReceivingMessages" and a["alertstate"] == "firing"
                           for a in firing(stack)),
               timeout=LAG + SLACK, what="DeadLetterQueueReceivingMessages firing in Prometheus")
    injected_at["stall"] = injected_at["outage"] = time.time()
    stack.scenario(**changed_knobs("consumer-stall"), **changed_knobs("model-unavailable"))

    delays: dict[str, float] = {}  # by alert name
    while time.time() < injected_at["stall"] + LISTEN:
        for e in expected:
            if e.alertname in delays:
                continue
            arrived = deliveries.first(e)
            if arrived is not None:
                delays[e.alertname] = arrived - injected_at[e.after]
            elif time.time() > injected_at[e.after] + e.bound:
                state = [a for a in firing(stack) if a["alertname"] == e.alertname]
                pytest.fail(f"{e.alertname} {dict(e.labels)} not delivered to {e.receiver} within {e.bound:.0f}s of "
                            f"the {e.after} ({e.why}); Prometheus has {state or 'nothing'}; delivered: {deliveries.names()}")
        time.sleep(1)

    report = "\n".join(f"{e.alertname:<34} {e.receiver:<9} {delays[e.alertname]:5.0f}s after the {e.after:<7} "
                       f"(bound {e.bound:.0f}s)" for e in expected)
    print(f"\ninjection to delivery:\n{report}")
    for e in expected:
        assert delays[e.alertname] <= e.bound, f"{e.alertname}: {delays[e.alertname]:.0f}s, bound {e.bound:.0f}s"

    delivered = [(receiver_name, alert["labels"]) for receiver_name, _, alert in deliveries.alerts()]
    print("".join(f"also {d.alertname} to {d.receiver}: {d.why}\n"
                  for d in ALLOWED if any(d.matches(r, labels) for r, labels in delivered)))
    unaccounted = unexplained(delivered, [*expected, *ALLOWED])
    assert not unaccounted, f"delivered, and neither expected nor allowed: {unaccounted}\n{report}"
    for receiver_name, labels in delivered:
        if receiver_name != HEARTBEAT:
            assert labels["severity"] == SEVERITY_OF[receiver_name], f"{labels} delivered to {receiver_name}"
    assert {path for path, _, _ in receiver.received} <= {f"/{PAGING}", f"/{TICKET}", f"/{HEARTBEAT}"}

    held = alertmanager_alerts(stack)
    # nothing else waiting for its group's next notification either (group_interval 5m outlasts the run)
    waiting = [(a["receivers"][0]["name"], a["labels"]) for a in held if a["status"]["state"] == "active"]
    assert not unexplained([(r, labels) for r, labels in waiting if r != NULL], [*expected, *ALLOWED]), waiting
    by_name = {a["labels"]["alertname"]: a for a in held}
    probe, model = by_name.get("InferenceProbeFailing"), by_name["ModelNotAvailable"]
    assert probe is not None, "InferenceProbeFailing never fired during the outage"
    assert probe["status"]["inhibitedBy"] == [model["fingerprint"]], probe["status"]


def alertmanager_alerts(stack: StackUnderTest) -> list[dict[str, Any]]:
    answer = requests.get(f"{stack.stack.url('alertmanager')}/api/v2/alerts", timeout=10)
    answer.raise_for_status()
    return answer.json()
