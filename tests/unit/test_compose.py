"""docker-compose.yml and the Dockerfile, checked structurally (no Docker engine runs here)."""

import json
import re
import tomllib

import jsonschema
import pytest
import yaml

from medobs.core import scrape_jobs
from medobs.simulator.cli import LISTENERS
from tests.conftest import REPO, SCHEMAS

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS_CONFIG = yaml.safe_load((REPO / "build" / "prometheus" / "prometheus-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
OURS = sorted(name for name, service in SERVICES.items() if service.get("image", "").startswith("medobs:local-"))


def flags(service: str) -> dict[str, str]:
    """``--flag=value`` arguments of a service's command."""
    return dict(arg[2:].split("=", 1) for arg in SERVICES[service].get("command", []) if arg.startswith("--"))


def test_validates_against_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(COMPOSE)


def test_every_bind_mount_exists():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"


def test_no_host_port_is_published_twice():
    seen: dict[str, str] = {}
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            host = re.match(r"(?:[\d.]+:)?(\d+):\d+", str(port)).group(1)
            assert host not in seen, f"{name} and {seen.get(host)} both publish {host}"
            seen[host] = name


def test_the_stack_reads_the_generated_configs():
    assert "./build/prometheus/prometheus-compose.yml:/etc/prometheus/prometheus.yml:ro" in SERVICES["prometheus"]["volumes"]
    assert "./build/prometheus/rules:/etc/prometheus/rules:ro" in SERVICES["prometheus"]["volumes"]
    assert "./build/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in SERVICES["alertmanager"]["volumes"]
    queries = "./build/postgres-exporter/queries.yaml:/etc/postgres-exporter/queries.yaml:ro"
    for exporter in ("postgres-exporter", "postgres-replica-exporter"):
        assert queries in SERVICES[exporter]["volumes"]
        assert flags(exporter)["extend.query-path"] == "/etc/postgres-exporter/queries.yaml"
    grafana = {volume.split(":")[0] for volume in SERVICES["grafana"]["volumes"]}
    assert {"./build/grafana/provisioning/datasources", "./build/grafana/dashboards"} <= grafana


@pytest.mark.parametrize("job", PROMETHEUS_CONFIG["scrape_configs"], ids=lambda job: job["job_name"])
def test_every_scrape_target_is_a_compose_service_on_a_port_it_listens_on(job):
    for target in job["static_configs"][0]["targets"]:
        host, port = target.rsplit(":", 1)
        assert host in SERVICES, f"{job['job_name']}: {host} is not a compose service"
        assert port in SERVICES[host]["expose"], f"{job['job_name']}: {host} does not expose {port}"


def test_postgresql_runs_with_a_streaming_replica_and_an_exporter_for_each():
    """As on the platform: the replica is a pg_basebackup -R copy of `postgres` (which allows it to
    replicate), and the postgresql job scrapes one exporter per server."""
    replica = SERVICES["postgres-replica"]
    script = replica["command"][0]
    assert replica["image"] == SERVICES["postgres"]["image"] and replica["user"] == "postgres"
    assert "pg_basebackup --host=postgres " in script and "--write-recovery-conf" in script
    assert script.rstrip().endswith("exec postgres") and 'chmod 700 "$$PGDATA"' in script
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    (initdb,) = SERVICES["postgres"]["configs"]
    assert initdb["target"].startswith("/docker-entrypoint-initdb.d/") and initdb["target"].endswith(".sh")
    assert "host replication all all" in COMPOSE["configs"][initdb["source"]]["content"]
    servers = {name: service["environment"]["DATA_SOURCE_NAME"] for name, service in SERVICES.items()
               if service.get("image", "").startswith("quay.io/prometheuscommunity/postgres-exporter")}
    assert servers == {"postgres-exporter": "postgresql://postgres@postgres:5432/postgres?sslmode=disable",
                       "postgres-replica-exporter": "postgresql://postgres@postgres-replica:5432/postgres?sslmode=disable"}
    (job,) = [j for j in PROMETHEUS_CONFIG["scrape_configs"] if j["job_name"] == "postgresql"]
    assert sorted(t.split(":")[0] for t in job["static_configs"][0]["targets"]) == sorted(servers)


def test_the_platform_and_its_backing_services_are_all_there():
    assert {"rabbitmq", "postgres", "postgres-replica", "redis", "simulator", "inference-exporter", "rabbitmq-exporter", "gpu-exporter",
            "postgres-exporter", "redis-exporter", "node-exporter", "grafana"} <= set(SERVICES)
    assert SERVICES["rabbitmq"]["image"].endswith("-management")  # management and Prometheus plugins


def test_our_services_listen_where_their_jobs_are_scraped():
    for name in OURS:
        listens = {value.rsplit(":", 1)[1] for flag, value in flags(name).items() if flag.endswith("listen")}
        assert listens == set(SERVICES[name]["expose"]), name
    simulator = flags("simulator")
    for flag, job, _ in LISTENERS:
        assert simulator[flag] == f":{scrape_jobs.job(job).stand_in_port}"


def test_the_simulator_predicts_through_the_inference_sidecar_and_the_sidecar_watches_it():
    sidecar, simulator = flags("inference-exporter"), flags("simulator")
    assert simulator["tfserving-upstream"] == f"http://inference-exporter:{sidecar['proxy-listen'].lstrip(':')}"
    assert sidecar["tfserving-url"] == f"http://simulator:{simulator['tfserving-listen'].lstrip(':')}"
    assert simulator["amqp-url"].startswith("amqp://rabbitmq:") and "@postgres:" in simulator["pg-dsn"]
    assert flags("rabbitmq-exporter")["rabbitmq-url"] == simulator["rabbitmq-management-url"]


def test_the_dockerfile_copies_what_the_package_installs():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"], *pyproject["project"]["license-files"],
              *pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}
    copied = set()
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY "):
            copied.update(part.rstrip("/") for part in line.split()[1:-1])
    assert needed <= copied, f"the Dockerfile does not copy {sorted(needed - copied)}"


def test_each_image_installs_only_its_extra_and_compose_builds_each_service_from_its_own():
    """A target per use, installing the wheel with that extra alone: the exporters' extras, and the
    simulator's (the stack extra); compose builds each of our services from the target it runs."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installs = dict(re.findall(r"^FROM base AS (\w+)\n(?:COPY .*\n)?RUN pip install .*/wheels/medobs-\*\.whl\)\[(\w+)\]\"$",
                               DOCKERFILE, flags=re.M))
    assert installs == {"gpu": "gpu", "queue": "queue", "inference": "inference", "simulator": "stack"}
    assert set(installs.values()) <= set(extras)
    targets = {name: SERVICES[name]["build"] for name in OURS}
    assert targets == {
        "gpu-exporter": {"context": ".", "target": "gpu"},
        "rabbitmq-exporter": {"context": ".", "target": "queue"},
        "inference-exporter": {"context": ".", "target": "inference"},
        "simulator": {"context": ".", "target": "simulator"},
    }
    assert all(SERVICES[name]["image"] == f"medobs:local-{targets[name]['target']}" for name in OURS)
