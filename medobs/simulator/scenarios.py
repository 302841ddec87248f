"""Scenarios: named sets of knobs that put faults into the simulated platform while it runs.

A scenario is a :class:`Knobs` value; ``healthy`` is all defaults. The control endpoint and
``--scenario`` / ``--set`` choose one, and :meth:`Knobs.with_changes` validates any change
(unknown knob, wrong type, out of range) with one clear message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Knobs:
    """What the simulated platform does right now (defaults: healthy)."""

    #: Requests per second the traffic loop sends to the gateway (0: no traffic).
    request_rate: float = 10.0
    #: Share of routed gateway requests the upstream answers with 500.
    error_ratio: float = 0.0
    #: Seconds added to every routed gateway request.
    extra_latency: float = 0.0
    #: The inference worker stops processing medical_data (it keeps its prefetched messages unacked).
    consumer_stalled: bool = False
    #: Share of published studies that are malformed, which the worker rejects into the DLQ.
    poison_ratio: float = 0.0
    #: Whether TF Serving has the model loaded (False: version state END, load error UNKNOWN).
    model_available: bool = True
    #: Seconds TF Serving adds to each inference.
    model_extra_latency: float = 0.0
    #: Seconds each study-service query holds its pooled connection (pg_sleep inside the query).
    db_hold_seconds: float = 0.0
    #: Gateway pods failing their readiness probe (kube-state-metrics shows fewer ready replicas).
    gateway_replicas_down: int = 0
    #: TF Serving in one ml-inference pod exits after each start: restarts with the kubelet's back-off.
    crash_looping: bool = False
    #: Days the API's TLS certificate has left, counted from when this is set (renewal failing when < 30).
    certificate_days_left: float = 60.0

    def with_changes(self, changes: dict[str, Any]) -> Knobs:
        """A copy with ``changes`` applied; ValueError names the offending knob."""
        types = {f.name: f.type for f in fields(self)}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in types:
                raise ValueError(f"unknown knob {name!r}; knobs: {', '.join(types)}")
            checked[name] = _checked(name, types[name], value)
        return replace(self, **checked)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked(name: str, kind: str, value: Any) -> Any:
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
            raise ValueError(f"knob {name} takes a whole number >= 0, not {value!r}")
        return int(value)
    if kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise ValueError(f"knob {name} takes true or false, not {value!r}")
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"knob {name} takes a number, not {value!r}") from None
    if isinstance(value, bool) or number != number or number < 0:
        raise ValueError(f"knob {name} takes a number >= 0, not {value!r}")
    if name.endswith("_ratio") and number > 1:
        raise ValueError(f"knob {name} is a share between 0 and 1, not {value!r}")
    return number


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    knobs: Knobs


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("healthy", "no faults: 10 requests/s, no 5xx, queue drained, DLQ flat", Knobs()),
        Scenario(
            "error-burst", "the upstream answers 25 % of routed gateway requests with 500",
            Knobs(error_ratio=0.25),
        ),
        Scenario(
            "latency-regression", "every routed gateway request takes 0.6 s longer (p95 above 0.5 s)",
            Knobs(extra_latency=0.6),
        ),
        Scenario(
            "consumer-stall", "the inference worker stops consuming: medical_data's backlog grows",
            Knobs(consumer_stalled=True),
        ),
        Scenario(
            "poison-messages", "20 % of published studies are malformed and rejected into the DLQ",
            Knobs(poison_ratio=0.2),
        ),
        Scenario(
            "model-unavailable", "TF Serving has no loadable version of the model: predicts fail with 404",
            Knobs(model_available=False),
        ),
        Scenario(
            "db-saturation", "study-service queries hold their connection 1.5 s: the pool runs dry",
            Knobs(db_hold_seconds=1.5),
        ),
        Scenario(
            "gateway-replica-down", "one of the 3 gateway pods fails its readiness probe: 2 ready replicas",
            Knobs(gateway_replicas_down=1),
        ),
        Scenario(
            "crash-loop", "TF Serving in one ml-inference pod crash-loops: restarts every 10 s to 5 min",
            Knobs(crash_looping=True),
        ),
        Scenario(
            "certificate-expiring", "cert-manager cannot renew the API certificate: 10 days left",
            Knobs(certificate_days_left=10.0),
        ),
    )
}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}") from None


def parse_assignment(text: str) -> tuple[str, str]:
    """``KNOB=VALUE`` from the command line."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"{text!r} is not KNOB=VALUE (for example error_ratio=0.3)")
    return name.strip(), value.strip()
