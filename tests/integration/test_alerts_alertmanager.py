"""Alertmanager routing: amtool on the generated files, and a real Alertmanager delivering to a
webhook receiver started by the test (routes, inhibitions, secrets read from files)."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from alerts import alertmanager, all_alerts
from alerts.platform import HEARTBEAT as HEARTBEAT_ALERT
from alerts.platform import TARGET_DOWN
from tests.conftest import free_port, require_binary
from tests.unit.test_alerts_alertmanager import CONFIGS, WebhookReceiver, receiver  # noqa: F401 (receiver is a fixture)


@contextmanager
def running_alertmanager(config: Path, folder: Path):
    """A real Alertmanager on a free loopback port; yields its URL and its log file."""
    port = free_port()
    log = folder / "alertmanager.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                require_binary("prometheus-alertmanager"), f"--config.file={config}",
                f"--storage.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "Alertmanager did not become ready"
            time.sleep(0.1)
        yield url, log
    finally:
        process.terminate()
        process.wait(10)


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("amtool"), *args], capture_output=True, text=True)


# --- amtool on the built files ---------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_amtool_check_config_passes(config):
    result = amtool("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 receivers" in result.stdout and "4 inhibit rules" in result.stdout


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", alertmanager.ROUTE_CASES, ids=lambda c: c.why)
def test_documented_route_cases(config, case):
    labels = [f"{name}={value}" for name, value in case.labels.items()]
    result = amtool("config", "routes", "test", f"--config.file={config}", f"--verify.receivers={case.receiver}", *labels)
    assert result.returncode == 0, f"{case.labels} -> {result.stdout.strip()}, expected {case.receiver}"


def test_every_alert_routes_to_the_receiver_of_its_severity():
    config = CONFIGS[0]
    for alert in {(a.name, a.severity, a.service) for a in all_alerts()}:
        name, severity, service = alert
        expected = alertmanager.HEARTBEAT if name == HEARTBEAT_ALERT else alertmanager.SEVERITY_RECEIVERS[severity]
        result = amtool("config", "routes", "test", f"--config.file={config}",
                        f"alertname={name}", f"severity={severity}", f"service={service}")
        assert result.stdout.strip() == expected, f"{alert}: {result.stdout}{result.stderr}"


# --- a real Alertmanager ---------------------------------------------------------------------


def wired_to(receiver: WebhookReceiver, folder: Path) -> tuple[Path, dict[str, str]]:
    """The built production config with its endpoints moved to ``receiver`` and its secret
    files to ``folder``; returns the config file and the secrets written."""
    secrets = {"pagerduty-routing-key": "R0UT1NGKEY-test-0042", "ticket-token": "tkt-s3cret-7", "heartbeat-token": "hb-s3cret-9"}
    for name, value in secrets.items():
        (folder / name).write_text(value + "\n")
    config = yaml.safe_load(CONFIGS[0].read_text())
    for receiver_config in config["receivers"]:
        for pagerduty in receiver_config.get("pagerduty_configs", []):
            pagerduty["url"] = f"{receiver.url}/pagerduty"
            pagerduty["routing_key_file"] = str(folder / Path(pagerduty["routing_key_file"]).name)
        for webhook in receiver_config.get("webhook_configs", []):
            webhook["url"] = f"{receiver.url}/{receiver_config['name']}"
            auth = webhook["http_config"]["authorization"]
            auth["credentials_file"] = str(folder / Path(auth["credentials_file"]).name)
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path, secrets


def alert(alertname: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": alertname, **labels},
        "annotations": {"summary": f"{alertname} test", "runbook_url": f"https://runbooks.example/{alertname}.md"},
    }


OURS = {"namespace": "medical-platform"}
#: kube-prometheus-stack's alerts carry a namespace and no service.
THEIRS = {"namespace": "kube-system"}
SENT = [
    alert("PostgresDown", severity="critical", service="postgresql", job="postgresql", instance="postgres-exporter:9187", **OURS),
    alert("PostgresConnectionsNearMax", severity="warning", service="postgresql", job="postgresql",
          instance="postgres-exporter:9187", server="postgres-primary:5432", **OURS),
    alert("QueueBacklogNotDraining", severity="warning", service="rabbitmq", queue="medical_data", **OURS),
    alert(TARGET_DOWN, severity="warning", service="redis", job="redis", instance="redis-exporter:9121", **OURS),
    alert("RedisMemoryNearMax", severity="warning", service="redis", job="redis", instance="redis-exporter:9121", **OURS),
    alert("TFServingDown", severity="critical", service="ml-inference", job="ml-inference", **OURS),
    alert("ModelNotAvailable", severity="critical", service="ml-inference", model="resnet50_chest_xray", **OURS),
    alert("InferenceProbeFailing", severity="critical", service="ml-inference", model="resnet50_chest_xray", **OURS),
    alert("SomethingNoteworthy", severity="info", service="gpu", **OURS),
    alert(HEARTBEAT_ALERT, severity="none", service="monitoring", **OURS),
    # kube-prometheus-stack's: a critical of theirs must not silence their warnings through our
    # rules (no `service` on either side), and their Watchdog is not ours to forward.
    alert("KubeletDown", severity="critical", job="kubelet", **THEIRS),
    alert("KubePodNotReady", severity="warning", pod="coredns-5d78c9869d-4xkqp", **THEIRS),
    alert("Watchdog", severity="none", **THEIRS),
]
EXPECTED = {
    "/pagerduty": ["KubeletDown", "PostgresDown", "TFServingDown"],
    "/ticket": ["KubePodNotReady", TARGET_DOWN, "QueueBacklogNotDraining"],
    "/heartbeat": [HEARTBEAT_ALERT],
}
INHIBITED = {"PostgresConnectionsNearMax", "RedisMemoryNearMax", "ModelNotAvailable", "InferenceProbeFailing"}


@pytest.mark.slow
def test_real_alertmanager_routes_inhibits_and_reads_secrets_from_files(tmp_path, receiver):
    config, secrets = wired_to(receiver, tmp_path)
    with running_alertmanager(config, tmp_path) as (url, log):
        requests.post(f"{url}/api/v2/alerts", json=SENT, timeout=5).raise_for_status()
        deadline = time.monotonic() + 60  # group_wait is 30s
        while len(receiver.received) < len(EXPECTED) + 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # anything else would arrive with the same group_wait
        held = requests.get(f"{url}/api/v2/alerts", timeout=5).json()
        status_config = requests.get(f"{url}/api/v2/status", timeout=5).json()["config"]["original"]

    delivered = {path: receiver.alertnames(path) for path in EXPECTED}
    assert delivered == EXPECTED
    assert {path for path, _, _ in receiver.received} == set(EXPECTED)

    inhibited = {a["labels"]["alertname"] for a in held if a["status"]["inhibitedBy"]}
    assert inhibited == INHIBITED

    (event,) = [body for path, _, body in receiver.received if path == "/pagerduty" and "PostgresDown" in body["payload"]["summary"]]
    assert event["routing_key"] == secrets["pagerduty-routing-key"]
    assert event["payload"]["severity"] == "critical"
    assert {"href": "https://runbooks.example/PostgresDown.md", "text": "Runbook"} in event["links"]
    for path, name in (("/ticket", "ticket-token"), ("/heartbeat", "heartbeat-token")):
        headers = [h for p, h, _ in receiver.received if p == path]
        assert headers and all(h["Authorization"] == f"Bearer {secrets[name]}" for h in headers)
    for value in secrets.values():
        assert value not in status_config
        assert value not in log.read_text()
