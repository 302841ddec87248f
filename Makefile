# The two set-up commands of the README are `make up` and `make test`; both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
MEDOBS := $(VENV)/bin/medobs

.PHONY: all deps venv build check-build docs dashboards up down status test test-fast clean

all: build test

# Debian packages and RabbitMQ plugins (as root; otherwise it says what to install).
deps:
	@.ci/install-system-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test]'
	touch $@

venv: $(VENV)/.installed

build: venv
	$(MEDOBS) build
	$(MEDOBS) mixin

check-build: venv
	$(MEDOBS) build --check
	$(MEDOBS) mixin --check

# The reference pages (CLI, metric catalog, alerts), the site file's JSON Schema and key table, generated
# from the code; a test fails when any is stale.
docs: venv
	$(PY) -m medobs.reference docs/reference
	$(PY) -m medobs.core.site docs/site-config.md

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

# Every test (tests/unit, tests/integration, tests/e2e) on pytest-xdist workers, a module per worker;
# the end-to-end tests share one stack and run one after another on one worker (tests/conftest.py).
TEST_WORKERS ?= 4
test: deps venv
	$(PY) -m pytest -n $(TEST_WORKERS)

# Unit tests and the quick integration tests: no end-to-end stack, nothing marked slow.
test-fast: venv
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not e2e and not slow"

clean:
	rm -rf $(VENV) *.egg-info
