# Two commands on a fresh machine: `make run` (app + embedded dev stack) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: venv run serve test lint deploy-check format check clean-devdata bench soak

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements-dev.txt
	@touch $(STAMP)

## Run the app on http://127.0.0.1:5000 with MongoDB, PostgreSQL, Redis and Vault started
## as child processes (data in .devdata/). Ctrl-C stops everything.
run: venv
	$(BIN)/python -m core.devstack run

## The production server (gunicorn, one gevent worker, gunicorn.conf.py) on
## http://127.0.0.1:5000 against the same dev stack. Ctrl-C stops everything.
serve: venv
	$(BIN)/python -m core.devstack run -- $(BIN)/gunicorn -c gunicorn.conf.py app:app

## The whole test suite against real servers started by the fixtures.
test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Dockerfile lint and the Kubernetes overlays rendered and schema-checked (tests/production
## checks these and their cross-references as part of `make test`).
deploy-check: venv
	$(BIN)/hadolint Dockerfile
	@rendered=$$(mktemp); trap 'rm -f "$$rendered"' EXIT; \
	for overlay in dev prod; do \
		echo "k8s/overlays/$$overlay"; \
		kubectl kustomize k8s/overlays/$$overlay >"$$rendered" || exit 1; \
		$(BIN)/kubernetes-validate --strict --quiet -k 1.30.0 "$$rendered" || exit 1; \
	done

## Benchmarks (docs/performance.md): HTTP overhead next to bare Flask under production
## gunicorn (load from wrk, apt-installed when missing), Socket.IO fan-out, auth primitives.
## Starts and stops its own servers on loopback; results in bench/results/. Not in CI.
bench: venv
	$(PIP) install -r bench/requirements.txt
	$(BIN)/python -m bench.http_overhead
	$(BIN)/python -m bench.socket_fanout
	$(BIN)/python -m bench.auth_primitives
	@echo; tail -q -n 1 bench/results/http_overhead.txt bench/results/socket_fanout.txt \
		bench/results/auth_primitives.txt

## Load and soak (not in CI): concurrent users for SOAK_MINUTES minutes against production
## gunicorn; fails on any error or on worker memory growth beyond the bound.
SOAK_MINUTES ?= 3
soak: venv
	$(PIP) install -r bench/requirements.txt
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: lint test

clean-devdata:
	rm -rf .devdata
