# The two set-up commands of the README are `make up` and `make test`; both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
MEDOBS := $(VENV)/bin/medobs

.PHONY: all deps venv build check-build dashboards up down status test clean

all: build test

# Debian packages and RabbitMQ plugins (as root; otherwise it says what to install).
deps:
	@.ci/install-system-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

build: venv
	$(MEDOBS) build

check-build: venv
	$(MEDOBS) build --check

# Build, lint and publish the Grafana dashboards to $$GRAFANA_URL with $$GRAFANA_TOKEN
# (pass flags with DASHBOARDS_FLAGS="--dry-run" or "--prune").
dashboards: build
	$(MEDOBS) dashboards lint
	$(MEDOBS) dashboards publish $(DASHBOARDS_FLAGS)

# The local stack on loopback (`medobs stack --help`): waits until Prometheus scrapes every target,
# then prints the health table and the addresses. Flags: STACK_FLAGS="--port-offset 1000".
up: deps venv build
	$(MEDOBS) stack $(STACK_FLAGS) up

down: venv
	$(MEDOBS) stack $(STACK_FLAGS) down

status: venv
	$(MEDOBS) stack $(STACK_FLAGS) status

test: deps venv
	$(PY) -m pytest

clean:
	rm -rf $(VENV) *.egg-info
