"""docker-compose.yml, checked structurally (no Docker engine runs here)."""

import json
import re

import jsonschema
import yaml

from medobs import REPO_ROOT

from .conftest import SCHEMAS

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_validates_against_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(COMPOSE)


def test_every_bind_mount_exists():
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"


def test_no_host_port_is_published_twice():
    seen: dict[str, str] = {}
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            host = re.match(r"(?:[\d.]+:)?(\d+):\d+", str(port)).group(1)
            assert host not in seen, f"{name} and {seen.get(host)} both publish {host}"
            seen[host] = name


def test_prometheus_reads_the_generated_compose_config():
    volumes = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./build/prometheus/prometheus-compose.yml:/etc/prometheus/prometheus.yml:ro" in volumes
