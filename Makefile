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

up: deps venv build
	$(MEDOBS) stack up

down: venv
	$(MEDOBS) stack down

status: venv
	$(MEDOBS) stack status

test: deps venv
	$(PY) -m pytest

clean:
	rm -rf $(VENV) *.egg-info
