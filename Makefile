# Two commands on a fresh machine: `make run` (app + embedded dev stack) and `make test`.
#
# Python 3.11, 3.12 or 3.13. `python3` by default, in `.venv/`; another one with
# `make test PYTHON=python3.13` (or a path), in its own `.venv-3.13/`, so the two never clobber
# each other. Installs come from the hash-locked `requirements-dev.lock` (`make lock` after
# editing a requirements file).
PYTHON ?= python3
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(origin PYTHON),file)
VENV ?= .venv
else
VENV ?= .venv-$(PY_VERSION)
endif
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: venv lock run serve test test-deps client test-fast smoke lint image image-smoke image-engine deploy-check format check clean-devdata bench bench-deps bench-smoke soak cluster-smoke

venv: $(STAMP)

$(STAMP): requirements-dev.lock
	@test -n "$(PY_VERSION)" || { echo "$(PYTHON) not found: install Python 3.11, 3.12 or 3.13, or pass PYTHON=/path/to/python3.X" >&2; exit 1; }
	@case "$(PY_VERSION)" in 3.11|3.12|3.13) ;; *) echo "Python $(PY_VERSION) ($(PYTHON)) is not supported: use 3.11, 3.12 or 3.13 (PYTHON=python3.13)" >&2; exit 1;; esac
	@$(BIN)/python -c 'import pip' 2>/dev/null || $(PYTHON) -m venv --clear $(VENV)  # new, or half made
	@$(BIN)/python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(PY_VERSION)" else "$(VENV) holds Python " + v + ", not $(PY_VERSION): remove it or pass VENV=...")'
	$(PIP) install --require-hashes -r requirements-dev.lock
	@touch $(STAMP)

## Regenerate requirements.lock and requirements-dev.lock (uv, universal, --hash=sha256) after
## editing requirements.txt or requirements-dev.txt. Commit the locks with the change.
lock: venv
	$(BIN)/python -m core.devstack.locks

## Run the app on http://127.0.0.1:5000 with MongoDB, PostgreSQL, Redis and Vault started
## as child processes (data in .devdata/). Ctrl-C stops everything.
run: venv
	$(BIN)/python -m core.devstack run

## The production server (gunicorn, one gevent worker, gunicorn.conf.py) on
## http://127.0.0.1:5000 against the same dev stack. Ctrl-C stops everything.
serve: venv
	$(BIN)/python -m core.devstack run -- $(BIN)/gunicorn -c gunicorn.conf.py app:app

## The whole test suite against real servers started by the fixtures (PYTEST_ARGS to narrow).
test: venv test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## System packages the suite needs beyond Python (Chromium for the browser test, Prometheus and
## promtool for the monitoring tests, HAProxy for the cluster test), installed when missing: as
## root with apt-get, else through sudo, else one line saying what to run.
test-deps:
	@bash tests/support/system-deps.sh

## A typed TypeScript client: types generated from /openapi.json (this project's app, built
## here; URL=http://host:port for a running server's) with openapi-typescript into
## tests/clients/ts/generated/schema.d.ts, for openapi-fetch (both pinned in that folder's
## package-lock.json), then tsc compiles tests/clients/ts/src/journey.ts against them.
client: venv
	$(BIN)/python -m tests.support.ts_client $(URL)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m tests.support.layers

## The production image (IMAGE, default python-base-04:dev): docker when a Docker engine
## answers, else podman (apt-installed when missing, its config and storage in .image/, the
## base made from Debian packages with mmdebstrap). PYTHON_IMAGE=... picks another base;
## IMAGE_PIP_INDEX_URL / IMAGE_PIP_CERT reach a private index; IMAGE_DOCS=true keeps /docs.
image: venv image-engine
	$(BIN)/python -m core.devstack.image build

## Build, then run the image read-only, non-root, no capabilities, against the dev stack's
## servers: ready, /docs off, this project's exercise (tests/production/image_smoke.py: register,
## log in, socket), SIGTERM -> exit 0 in time (docs/deploy.md).
image-smoke: venv image-engine
	$(BIN)/python -m core.devstack.image smoke tests.production.image_smoke:exercise

image-engine:
	@if ! docker info >/dev/null 2>&1 && ! command -v podman >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends podman buildah mmdebstrap uidmap runc fuse-overlayfs; \
	fi

## Dockerfile lint, the Kubernetes overlays rendered and schema-checked, and k8s/monitoring:
## its ServiceMonitor and PrometheusRule against the operator's CRD models, the dashboard
## ConfigMap, `promtool check rules` (tests/production and tests/monitoring check these and
## their cross-references as part of `make test`).
deploy-check: venv test-deps
	$(BIN)/hadolint Dockerfile
	@rendered=$$(mktemp); trap 'rm -f "$$rendered"' EXIT; \
	for overlay in dev prod; do \
		echo "k8s/overlays/$$overlay"; \
		kubectl kustomize k8s/overlays/$$overlay >"$$rendered" || exit 1; \
		$(BIN)/kubernetes-validate --strict --quiet -k 1.30.0 "$$rendered" || exit 1; \
	done
	@$(BIN)/python -m tests.support.monitoring

## Benchmarks (docs/performance.md): HTTP overhead next to bare Flask under production
## gunicorn (load from wrk, apt-installed when missing), Socket.IO fan-out, auth primitives.
## Starts and stops its own servers on loopback; results in bench/results/. CI runs only
## `make bench-smoke` (below).
bench: bench-deps
	$(BIN)/python -m bench.http_overhead
	$(BIN)/python -m bench.socket_fanout
	$(BIN)/python -m bench.auth_primitives
	@echo; tail -q -n 1 bench/results/http_overhead.txt bench/results/socket_fanout.txt \
		bench/results/auth_primitives.txt

## Load and soak (CI runs its smoke mode only): concurrent users for SOAK_MINUTES minutes against production
## gunicorn; fails on any error or on worker memory growth beyond the bound.
SOAK_MINUTES ?= 3
soak: bench-deps
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

## Every benchmark for a few seconds (--smoke), as CI runs them so that none rots unnoticed:
## each must still start its servers and finish without an error; no figure is judged.
## About two minutes; results in bench/results/*-smoke.txt.
bench-smoke: bench-deps
	$(BIN)/python -m bench.http_overhead --smoke
	$(BIN)/python -m bench.socket_fanout --smoke
	$(BIN)/python -m bench.auth_primitives --smoke
	$(BIN)/python -m bench.soak --smoke
	$(BIN)/python -m bench.socket_capacity --smoke
	$(BIN)/python -m bench.http_instructions --smoke

## The proving ground of issue 21 (docs/performance.md, "Cluster"): three production instances
## behind Debian's HAProxy, 104 sockets (socket.io-client and python-socketio) chatting in rooms
## across them while HTTP traffic goes on; every instance restarted in turn (SIGTERM), then
## one SIGKILLed. Fails on a failed request, a socket not back, a message lost or out of order,
## presence wrong after the crash. About 5 minutes; figures in bench/results/cluster.txt. The
## suite runs the same harness smaller (tests/resilience/test_cluster.py).
cluster-smoke: venv test-deps
	$(BIN)/python -m bench.cluster

bench-deps: venv
	$(PIP) install -r bench/requirements.txt

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: lint test

clean-devdata:
	rm -rf .devdata
