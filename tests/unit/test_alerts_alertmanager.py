"""Alertmanager routing as generated: both files share routes and inhibitions, production
receivers read their secrets from files, alerts group by alert and service (amtool and a real
Alertmanager: tests/integration/test_alerts_alertmanager.py)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.conftest import REPO, require_binary

BUILT = REPO / "build" / "alertmanager"
CONFIGS = [BUILT / "alertmanager.yml", BUILT / "alertmanager-native.yml"]


class WebhookReceiver:
    """A loopback HTTP server that records every POST: path, headers and JSON body in
    ``received``, and in ``arrived`` at the same index the time (``time.time()``) it came."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[str, dict[str, str], dict]] = []
        self.arrived: list[float] = []
        received, arrived, lock = self.received, self.arrived, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append((self.path, dict(self.headers), json.loads(body)))
                    arrived.append(time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alertnames(self, path: str) -> list[str]:
        """Alert names delivered to ``path`` (webhook bodies and PagerDuty events alike)."""
        names = []
        for got_path, _, body in self.received:
            if got_path != path:
                continue
            if "alerts" in body:
                names += [alert["labels"]["alertname"] for alert in body["alerts"]]
            else:
                names.append(body["payload"]["summary"].split()[1])
        return sorted(names)


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("amtool"), *args], capture_output=True, text=True)


def test_both_files_share_routing_and_inhibitions():
    production, native = (yaml.safe_load(p.read_text()) for p in CONFIGS)
    assert production["route"] == native["route"]
    assert production["inhibit_rules"] == native["inhibit_rules"]
    assert [r["name"] for r in production["receivers"]] == [r["name"] for r in native["receivers"]]


def test_production_receivers_read_their_secrets_from_files():
    text = CONFIGS[0].read_text()
    config = yaml.safe_load(text)
    paging, ticket, heartbeat, null = config["receivers"]
    mounted = "/etc/alertmanager/secrets/alertmanager-receivers/"  # where the operator mounts the site's Secret
    assert paging["pagerduty_configs"][0]["routing_key_file"] == f"{mounted}pagerduty-routing-key"
    for receiver in (ticket, heartbeat):
        auth = receiver["webhook_configs"][0]["http_config"]["authorization"]
        assert auth["credentials_file"].startswith(mounted)
    for inline in ("routing_key:", "service_key:", "credentials:", "api_url:", "password:", "bearer_token:"):
        assert inline not in text
    assert null == {"name": "null"}


def test_grouping_is_by_alert_and_service():
    assert yaml.safe_load(CONFIGS[0].read_text())["route"]["group_by"] == ["alertname", "service"]


def alert(alertname: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": alertname, **labels},
        "annotations": {"summary": f"{alertname} test", "runbook_url": f"https://runbooks.example/{alertname}.md"},
    }
