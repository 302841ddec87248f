"""The simulator's control endpoint: change the scenario while it runs, and see what it does.

- ``GET /scenario``: ``{"name": "healthy", "knobs": {"request_rate": 10.0, ...}}``
- ``POST /scenario`` with ``{"name": "error-burst"}``, ``{"name": "healthy", "knobs":
  {"poison_ratio": 0.5}}`` (a scenario, then changes) or ``{"knobs": {...}}`` (changes to the
  current knobs; the name becomes ``custom``): the new state, or 400 ``{"error": "..."}``
- ``GET /scenarios``: every named scenario with its summary and knobs
- ``GET /status``: the components, traffic counts, the broker's own queue depths, and each
  deployment's ready / desired pods
- ``GET /healthz``: ``ok``
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from medobs.simulator import httpserver
from medobs.simulator.scenarios import SCENARIOS, Knobs, scenario

MAX_BODY = 64 * 1024


class Controlled(Protocol):
    name: str
    knobs: Knobs

    def apply(self, name: str, knobs: Knobs) -> None: ...

    def status(self) -> dict[str, Any]: ...


def change(target: Controlled, request: Any) -> dict[str, Any]:
    """Apply a ``POST /scenario`` body; ValueError says what is wrong with it."""
    if not isinstance(request, dict) or not set(request) <= {"name", "knobs"} or not request:
        raise ValueError('expected {"name": SCENARIO} and/or {"knobs": {KNOB: VALUE, ...}}')
    changes = request.get("knobs", {})
    if not isinstance(changes, dict):
        raise ValueError('"knobs" must be an object of KNOB: VALUE')
    if "name" in request:
        name = str(request["name"])
        knobs = scenario(name).knobs.with_changes(changes)
        if changes:
            name = f"{name}+custom"
    else:
        name, knobs = "custom", target.knobs.with_changes(changes)
    target.apply(name, knobs)
    return state(target)


def state(target: Controlled) -> dict[str, Any]:
    return {"name": target.name, "knobs": target.knobs.as_dict()}


def start(target: Controlled, listen: tuple[str, int]) -> ThreadingHTTPServer:
    """Serve the control endpoint in a background thread; the caller owns ``shutdown()``."""
    return httpserver.serve(_handler(target), listen, "control")


def _handler(target: Controlled) -> type[BaseHTTPRequestHandler]:
    pages: dict[str, Callable[[], Any]] = {
        "/scenario": lambda: state(target),
        "/scenarios": lambda: {
            s.name: {"summary": s.summary, "knobs": s.knobs.as_dict()} for s in SCENARIOS.values()
        },
        "/status": target.status,
    }

    class Handler(httpserver.Handler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.route == "/healthz":
                self.send_body(200, b"ok\n", "text/plain")
            elif self.route in pages:
                self.send_json(200, pages[self.route]())
            else:
                self.send_json(404, {"error": f"no page {self.route}; pages: /scenario, /scenarios, /status, /healthz"})

        def do_POST(self) -> None:  # noqa: N802
            if self.route != "/scenario":
                self.send_json(404, {"error": "POST /scenario only"})
                return
            if int(self.headers.get("Content-Length") or 0) > MAX_BODY:
                self.send_json(413, {"error": "body too large"})
                self.close_connection = True
                return
            try:
                self.send_json(200, change(target, json.loads(self.read_body() or b"null")))
            except ValueError as error:  # json.JSONDecodeError included
                self.send_json(400, {"error": str(error)})

    return Handler
