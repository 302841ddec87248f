"""The native stack: every component up and scraped, no duplicates, clean stop, clear errors.

The whole stack runs once per session (``running_stack``, tests/stack_support.py); its teardown
checks that ``medobs stack down`` leaves no process of ours running.
"""

import os
import re
import socket

import pytest
import requests

from alerts import alertmanager
from medobs import stack
from medobs.core import scrape_jobs
from medobs.core.catalog import gpu, inference, kubernetes, postgres
from tests.conftest import REPO, medobs, require_binary
from tests.stack_support import SCRAPE_INTERVAL, wait_until

OFFSET = 21000  # the tests that never get as far as starting anything


@pytest.fixture
def stack_args(tmp_path):
    require_binary("prometheus")
    args = ["stack", "--state-dir", str(tmp_path / "state"), "--port-offset", str(OFFSET)]
    yield args
    medobs(*args, "down")


def test_every_component_serves_a_job_and_no_two_ports_collide():
    served = [job for comp in stack.COMPONENTS for job in comp.scrape_jobs]
    assert set(served) == set(scrape_jobs.JOB_NAMES)
    # every native target (the postgresql job has the primary's and the replica's exporter) has its component
    assert sorted(name for comp in stack.COMPONENTS for name in comp.ports if name in scrape_jobs.NATIVE_PORTS) == sorted(
        scrape_jobs.NATIVE_PORTS)
    ports = [stack.Stack(stack.DEFAULT_STATE_DIR, REPO).port(name)
             for comp in stack.COMPONENTS for name in comp.ports]
    assert len(ports) == len(set(ports)), "two components on one port"


def test_the_simulator_is_isolated_and_sends_predicts_through_the_sidecar(tmp_path):
    configured = stack.Stack(tmp_path, REPO, 100, rabbitmq_vhost="v1", postgres_database="db1",
                             queue_include_vhost="v1")
    simulator = " ".join(stack.component("simulator").argv(configured))
    assert "--rabbitmq-vhost v1" in simulator and "dbname=db1" in simulator
    assert f"--tfserving-upstream http://127.0.0.1:{8502 + 100}" in simulator
    sidecar = " ".join(stack.component("inference-exporter").argv(configured))
    assert f"--proxy-listen 127.0.0.1:{8502 + 100}" in sidecar and f"--tfserving-url http://127.0.0.1:{8501 + 100}" in sidecar
    assert stack.component("queue-exporter").argv(configured)[-2:] == ["--include-vhost", "v1"]
    everything = stack.Stack(tmp_path, REPO)
    assert "--include-vhost" not in stack.component("queue-exporter").argv(everything)  # every vhost by default


def test_every_target_is_up_and_the_gpu_exporter_reports_no_gpu(healthy_stack):
    """The acceptance of `make up`: every Prometheus target up (from /api/v1/targets), the GPU
    exporter's own medobs_gpu_up 1 with the reason on this machine without a GPU (the stack runs it
    with --allow-no-gpu, so a healthy stack alerts on nothing), and the platform's telemetry
    flowing: the sidecar's proxy in the predict path, cAdvisor and kube-state-metrics shapes."""
    running_stack = healthy_stack
    targets = running_stack.targets()
    assert sorted(t["labels"]["instance"] for t in targets) == sorted(running_stack.stack.address(name)
                                                                      for name in scrape_jobs.NATIVE_PORTS)
    assert {t["labels"]["job"] for t in targets} == set(scrape_jobs.JOB_NAMES)
    assert [t for t in targets if t["health"] != "up"] == []
    servers = {r["metric"]["instance"]: float(r["value"][1])
               for r in running_stack.query(f'{postgres.IS_REPLICA.name}{{job="postgresql"}}')}
    assert servers == {running_stack.stack.address("postgresql"): 0,
                       running_stack.stack.address("postgres-replica-exporter"): 1}
    assert running_stack.value(f'{gpu.UP.name}{{job="gpu"}}') == 1
    assert running_stack.value(f'{gpu.NVML_UNAVAILABLE.name}{{job="gpu"}}') == 1
    assert running_stack.value(f'{inference.UP.name}{{job="inference-exporter"}}') == 1
    window = f"{4 * SCRAPE_INTERVAL}s"
    wait_until(lambda: running_stack.value(f"sum(rate({inference.IMAGES.name}[{window}]))"),
               timeout=60, what="images predicted through the sidecar's proxy")
    # healthy now (whatever earlier tests of the session injected): no failed predict lately
    failed = f'sum(increase({inference.REQUESTS.name}{{outcome!="ok"}}[{window}])) or vector(0)'
    wait_until(lambda: running_stack.value(failed) == 0, timeout=60, what="no failed predicts")
    assert running_stack.value(f"sum({inference.BATCH_SIZE.count})") > 0
    ready = {r["metric"]["deployment"]: float(r["value"][1])
             for r in running_stack.query(kubernetes.DEPLOYMENT_READY.name)}
    assert ready == {"api-gateway": 3, "ml-inference": 2, "study-service": 2}
    cpu = f'sum by (pod) (rate({kubernetes.CPU.name}{{namespace="medical-platform", container!=""}}[{window}]))'
    busy = wait_until(lambda: [r for r in running_stack.query(cpu) if float(r["value"][1]) > 0], timeout=30,
                      what="CPU used by the pods (cAdvisor)")
    assert len(busy) == 7  # 3 gateway, 2 study-service, 2 ml-inference pods


def printed_rows(lines: list[str]) -> list[list[str]]:
    """The cells of a table `medobs stack` printed (columns two or more spaces apart)."""
    return [re.split(r"\s{2,}", line) for line in lines]


def test_up_prints_every_target_up_and_where_everything_is(running_stack):
    """What `make up` ends with: the health table (every job's targets up, the exporters' own
    health beside them, the GPU exporter's reason for having no GPU here), then the addresses, each answering."""
    lines = running_stack.up_output.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("JOB ")))
    end = lines.index("", start)
    header, *rows = printed_rows(lines[start:end])
    assert header == ["JOB", "INSTANCE", "HEALTH", "EXPORTER'S OWN HEALTH / LAST ERROR"]
    assert {row[0] for row in rows} == set(scrape_jobs.JOB_NAMES)
    assert sorted(row[1] for row in rows) == sorted(running_stack.stack.address(name) for name in scrape_jobs.NATIVE_PORTS)
    assert sorted((row[0], row[1]) for row in rows) == sorted(
        (t["labels"]["job"], t["labels"]["instance"]) for t in running_stack.targets())
    assert [row for row in rows if row[2] != "up"] == []
    for job, instance, _, *note in rows:
        if job in stack.SELF_HEALTH:
            (text,) = note
            assert text.startswith(f"{stack.SELF_HEALTH[job].name} 1"), (job, instance, text)
            assert (job == "gpu") == ("(no GPU here: " in text), (job, instance, text)
        else:
            assert note == [], (job, instance, note)
    assert "(no GPU here: " in next(row[3] for row in rows if row[0] == "gpu")

    addresses = dict(printed_rows(lines[end + 1:]))
    configured = running_stack.stack
    webhooks = f"http://127.0.0.1:{alertmanager.LOCAL_WEBHOOK_PORT + configured.port_offset}/<receiver>"
    assert addresses["Prometheus"] == configured.url("prometheus")
    assert addresses["Alertmanager"] == f"{configured.url('alertmanager')} (receivers post to {webhooks})"
    assert addresses["Simulator"].startswith(f"{configured.url('simulator-control')} (scenario healthy; ")
    assert addresses["Simulator"].endswith(f"; gateway {configured.url('api-gateway')})")
    assert addresses["State"] == str(configured.state_dir)
    for url in (f"{addresses['Prometheus']}/-/ready", f"{configured.url('alertmanager')}/-/ready",
                f"{configured.url('simulator-control')}/status", f"{configured.url('api-gateway')}/actuator/health"):
        assert requests.get(url, timeout=10).status_code == 200, url


def test_the_simulators_database_traffic_reaches_postgres_exporter(healthy_stack):
    """The simulator's real queries on the stack's own database (no one else uses it; the
    exporter itself connects to another) move postgres_exporter's series of that database on
    the primary: commits increase, and its pools hold connections."""
    database = (f'job="postgresql", instance="{healthy_stack.stack.address("postgresql")}", '
                f'datname="{healthy_stack.database}"')
    window = f"{4 * SCRAPE_INTERVAL}s"
    committed = wait_until(lambda: healthy_stack.value(f"increase({postgres.XACT_COMMIT.name}{{{database}}}[{window}])"),
                           timeout=60, what=f"transactions committed in {healthy_stack.database}")
    assert committed > 0
    connections = healthy_stack.value(f"sum({postgres.ACTIVITY_COUNT.name}{{{database}}})")
    assert connections is not None and connections > 0


def test_up_again_starts_no_duplicates_and_status_shows_every_target(running_stack):
    before = sorted(p.pid for p in running_stack.started())
    again = medobs(*running_stack.args, "up", "--wait", "0", check=True)
    assert again.stdout.count("already running") == len(stack.COMPONENTS)
    assert sorted(p.pid for p in running_stack.started()) == before
    status = medobs(*running_stack.args, "status", check=True).stdout
    assert status.count("running") >= len(stack.COMPONENTS)
    for job in scrape_jobs.JOB_NAMES:
        assert f"\n{job} " in status
    assert "medobs_gpu_up 1 (no GPU here: " in status


def test_logs_show_the_component_log(running_stack):
    logs = medobs(*running_stack.args, "logs", "prometheus", check=True)
    assert "Server is ready to receive web requests" in logs.stdout
    simulator = medobs(*running_stack.args, "logs", "simulator", check=True)
    assert "scenario healthy" in simulator.stdout


def test_port_in_use_is_one_clear_line(stack_args):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 9090 + OFFSET))
        squatter.listen()
        result = medobs(*stack_args, "up")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"port {9090 + OFFSET} on 127.0.0.1 is in use" in line and "--port-offset" in line
    assert result.stdout == "", "a component was started before the check"


def test_missing_binary_says_what_to_install(stack_args):
    env = {**os.environ, "PATH": os.path.dirname(os.sys.executable)}
    result = medobs(*stack_args, "up", env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "`prometheus` not found: apt install prometheus" in line
    assert "docker compose up" in line
    assert result.stdout == "", "a component was started before the check"


def test_a_bad_port_offset_in_the_environment_is_one_line_and_harms_no_other_command(tmp_path):
    env = {**os.environ, "MEDOBS_PORT_OFFSET": "lots"}
    result = medobs("stack", "--state-dir", str(tmp_path), "status", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "medobs stack: error: MEDOBS_PORT_OFFSET must be a whole number, not 'lots'"
    assert medobs("--version", env=env).returncode == 0
    assert medobs("stack", "--state-dir", str(tmp_path), "--port-offset", "5", "status", env=env).returncode == 1
