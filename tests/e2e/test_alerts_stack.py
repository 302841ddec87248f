"""The local stack runs the alerts for real: Prometheus loads every generated rule file and
Alertmanager routes what fires (here the MedobsHeartbeat, to the heartbeat webhook)."""

import time

import requests

from alerts import alertmanager, all_alerts
from tests.conftest import medobs, require_binary
from tests.stack_support import StackUnderTest
from tests.integration.test_alerts_alertmanager import WebhookReceiver

OFFSET = 22000  # clear of test_stack.py's offset and of a developer's own stack


def test_stack_loads_every_alert_and_alertmanager_delivers_the_heartbeat(tmp_path):
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    receiver = WebhookReceiver(port=alertmanager.LOCAL_WEBHOOK_PORT + OFFSET)
    under_test = StackUnderTest(tmp_path / "state", port_offset=OFFSET)  # its own vhost and database
    args = under_test.args
    prometheus = f"http://127.0.0.1:{9090 + OFFSET}"
    try:
        up = under_test.up()
        assert "alertmanager" in up.stdout
        groups = requests.get(f"{prometheus}/api/v1/rules?type=alert", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert {rule["name"] for rule in rules} >= {alert.name for alert in all_alerts()}
        assert all(rule["health"] != "err" for rule in rules), [r for r in rules if r["health"] == "err"]
        managers = requests.get(f"{prometheus}/api/v1/alertmanagers", timeout=5).json()["data"]
        assert [m["url"] for m in managers["activeAlertmanagers"]] == [f"http://127.0.0.1:{9093 + OFFSET}/api/v2/alerts"]

        # One 15s evaluation, then Alertmanager's 0s group_wait; but when Prometheus evaluates
        # before Alertmanager (started second) is ready, it sends again only a minute later.
        deadline = time.monotonic() + 90
        while "MedobsHeartbeat" not in receiver.alertnames("/heartbeat") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert receiver.alertnames("/heartbeat")[:1] == ["MedobsHeartbeat"], medobs(*args, "logs").stdout
        assert {path for path, _, _ in receiver.received} == {"/heartbeat"}
    finally:
        under_test.down()
        under_test.remove_backends()
        receiver.close()
