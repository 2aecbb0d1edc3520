# Wunder / hundi — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DURATION ?= 30
MARKET ?= spot
SYMBOLS ?= BTCUSDT,ETHUSDT
DEMO_STORE ?= ./data
PYTEST_ARGS ?=
# Images (`make images`; deploy/k8s uses the same names): IMAGE_REGISTRY=registry.example:5000
IMAGE_TAG ?= latest
IMAGE_REGISTRY ?=
IMAGE_PREFIX := $(if $(IMAGE_REGISTRY),$(IMAGE_REGISTRY)/,)
# Development venv profile for hundi-venv-install / hundi-install (scripts/install.sh).
PROFILE ?= dev
# Where `make hundi-up` reads the .*.env files (compose reads them from HUNDI_ENV_DIR too).
ENV_DIR ?= .
# hundi-vscode-bootstrap writes here
VSCODE_DIR ?= .vscode
# docker compose command (override e.g. with COMPOSE="docker-compose").
COMPOSE ?= docker compose
# hundi-debug: file=<script> args="<args>" where=container|local wait=yes|no port=5678
where ?= container
wait ?= yes
port ?= 5678

.DEFAULT_GOAL := help
.PHONY: help venv runtime-venv test test-fast deps-upgrade lint typecheck check demo bench bench-venv bench-venues bench-stores bench-series bench-research clean services-up services-down services-status services-logs

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  \033[36m%-24s\033[0m %s\n", $$1, $$2}'

# The same script the Dockerfile runs (profile dev = the image's dev target): CI exercises it.
# Everything comes from uv.lock (exact versions, hashes); the stamp is newer than the lock once
# the venv matches it.
DEV_STAMP := $(VENV)/.hundi-dev-installed
$(DEV_STAMP): pyproject.toml uv.lock scripts/install.sh scripts/uv-requirements.txt \
		$(wildcard src/hundi/*.c src/hundi/*/*.c src/hundi/*/*/*.c)
	PYTHON=$(PYTHON) scripts/install.sh $(VENV) dev
	@touch $@

venv: $(DEV_STAMP) ## Create .venv from uv.lock: hundi (editable), dev tools, notebook and JupyterLab deps

# `make demo` needs the runtime only (34 packages, ~20 s from an empty cache on a quiet machine,
# up to a minute on a loaded one); a dev venv already has it.
runtime-venv: ## .venv with the runtime only (what make demo needs), unless a venv exists
	@test -x $(BIN)/hundi || { \
		echo "[demo] installing hundi's runtime from uv.lock into $(VENV) (34 packages, ~20-60 s the first time)"; \
		PYTHON=$(PYTHON) scripts/install.sh $(VENV) runtime; }

test: venv ## The whole test suite (CI runs lint, typecheck, k8s-validate and the servers too: .ci/run)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv ## The suite without the tests marked slow (sockets, processes, servers): the edit loop
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

deps-upgrade: ## Relock every dependency to its newest release, install it and run the suite
	PYTHON=$(PYTHON) scripts/install.sh $(VENV) dev bootstrap
	.tools/uv/bin/uv lock --upgrade
	PYTHON=$(PYTHON) scripts/install.sh $(VENV) dev deps self
	@touch $(DEV_STAMP)
	$(MAKE) lint typecheck test
	@echo "deps-upgrade: the suite passes on the new uv.lock; review 'git diff uv.lock' and commit it"

lint: venv ## ruff (lint + format check); uv.lock matches pyproject.toml
	.tools/uv/bin/uv lock --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy --strict on the package
	$(BIN)/mypy

check: lint typecheck services-up test ## Everything CI checks (starts the real servers)

demo: runtime-venv ## Simulator + collector for DURATION s into ./data, then summary and a sample query
	@bash scripts/demo.sh "$(DURATION)" "$(MARKET)" "$(SYMBOLS)" "$(DEMO_STORE)"

# cryptofeed for `make bench`'s comparison: its own venv, exact versions and hashes from
# bench/requirements-cryptofeed.txt, never in uv.lock (hundi does not depend on it).
BENCH_VENV := .bench-venv
$(BENCH_VENV)/.installed: bench/requirements-cryptofeed.txt $(DEV_STAMP)
	.tools/uv/bin/uv venv --allow-existing --python $(BIN)/python $(BENCH_VENV)
	.tools/uv/bin/uv pip sync --python $(BENCH_VENV)/bin/python --require-hashes bench/requirements-cryptofeed.txt
	@touch $@

bench-venv: $(BENCH_VENV)/.installed ## .bench-venv: cryptofeed pinned with hashes, for make bench (not in uv.lock)

bench: venv ## hundi vs cryptofeed vs a bare loop at 1k/5k/10k/max frames/s, then collector throughput
	@$(MAKE) --no-print-directory bench-venv || echo "[bench] no cryptofeed venv: the comparison runs without cryptofeed"
	$(BIN)/python bench/vs_cryptofeed.py
	$(BIN)/python bench/run.py

bench-venues: venv ## Each venue's protocol alone (frames/s per core): real recordings and simulator frames
	@for script in bench/micro.py bench/venue_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

bench-stores: services-up ## Cassandra and KairosDB write/read throughput on the real servers
	$(BIN)/python bench/cassandra_write.py
	$(BIN)/python bench/cassandra_chunks.py
	$(BIN)/python bench/cassandra_compaction.py
	$(BIN)/python bench/kairosdb_write.py

bench-series: venv ## Streaming series engine and offline bars (10M trades) vs pandas
	$(BIN)/python bench/series.py

bench-research: venv ## hundi.bars over 10M stored trades and book_at latency vs pandas baselines
	$(BIN)/python bench/research.py

services-up: venv ## Start real Cassandra 5 + KairosDB from Maven Central jars (logs: .services/logs)
	$(BIN)/python services/manage.py up

services-down: ## Stop the servers services-up started
	$(BIN)/python services/manage.py down

services-status: ## Show whether Cassandra and KairosDB are up
	$(BIN)/python services/manage.py status

services-logs: ## Tail the servers' logs
	$(BIN)/python services/manage.py logs

# A local multi-node cluster beside the single node: 127.0.0.1..N, CQL 9142, storage 7100,
# JMX 7301.. (services/manage.py; docs/cassandra-store.md "A local multi-node cluster").
N ?= 3
.PHONY: cluster-up cluster-down cluster-status test-cluster
cluster-up: venv ## Start N (3) real Cassandra 5 nodes on 127.0.0.1..N, wait until all UN, RF=N
	$(BIN)/python services/manage.py cluster up --nodes $(N)

cluster-down: ## Stop the cluster's nodes (data kept; `services/manage.py cluster wipe` drops it)
	$(BIN)/python services/manage.py cluster down

cluster-status: ## Each cluster node's process, CQL port and nodetool ring state
	$(BIN)/python services/manage.py cluster status

test-cluster: venv ## Fault tests on the running cluster (kill -9 a node, two down): tests/cluster
	$(BIN)/python -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

clean: ## Remove the venv, caches and demo data
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis data logs build *.egg-info src/*.egg-info

.PHONY: hundi-venv-bootstrap hundi-venv-install hundi-install hundi-vscode-bootstrap hundi-up hundi-down hundi-logs hundi-debug hundi-env-check images
hundi-venv-bootstrap: ## Create .venv (no pip) and the pinned uv in .tools/uv
	PYTHON=$(PYTHON) scripts/install.sh $(VENV) $(PROFILE) bootstrap

hundi-venv-install: ## Third-party dependencies from uv.lock into .venv (PROFILE=dev|runtime|prod|jupyter)
	scripts/install.sh $(VENV) $(PROFILE) deps

hundi-install: ## hundi itself into .venv (editable for PROFILE=dev, no dependency changes)
	scripts/install.sh $(VENV) $(PROFILE) self

hundi-vscode-bootstrap: ## Write/merge .vscode settings, launch (debugpy attach :5678) and extensions
	$(PYTHON) scripts/vscode_bootstrap.py $(VSCODE_DIR)

# Every env file the compose stack reads: one message naming each missing file or key.
HUNDI_UP_ENV_FILES := .hundi.env .cassandra.env .kairosdb.env .jupyter.env .secret.cassandra.env .secret.grafana.env .secret.jupyter.env .secret.hundi.env
hundi-env-check: venv ## Check the env files the dev stack needs (ENV_DIR=dir, default .)
	@$(BIN)/python -m hundi.deploy.envfiles --dir $(ENV_DIR) $(HUNDI_UP_ENV_FILES)

# `docker compose version` first: without the compose plugin docker's own "unknown command" is
# clearer than the flag error a subcommand gives; without an engine the subcommand says so.
COMPOSE_CHECK = @$(COMPOSE) version >/dev/null
# compose.yaml reads the env files from HUNDI_ENV_DIR and runs the hundi services as this user.
COMPOSE_ENV = HUNDI_ENV_DIR=$(abspath $(ENV_DIR)) HUNDI_UID=$$(id -u) HUNDI_GID=$$(id -g) IMAGE_TAG=$(IMAGE_TAG)

hundi-up: hundi-env-check ## Development stack with docker compose (Cassandra, KairosDB, collector, API, Grafana, Jupyter)
	$(COMPOSE_CHECK)
	$(COMPOSE_ENV) $(COMPOSE) up --detach --build

hundi-down: ## Stop the development stack (volumes kept; `docker compose down -v` drops them)
	$(COMPOSE_CHECK)
	$(COMPOSE_ENV) $(COMPOSE) down

hundi-logs: ## Follow the development stack's logs
	$(COMPOSE_CHECK)
	$(COMPOSE_ENV) $(COMPOSE) logs --follow --tail=200

hundi-debug: ## Run file=<file> args=<args> under debugpy on 0.0.0.0:5678 (dev container; where=local: .venv; wait=no)
	@$(COMPOSE_ENV) COMPOSE="$(COMPOSE)" BIN=$(BIN) \
		scripts/debug.sh "$(where)" "$(wait)" "$(port)" "$(file)" $(args)

images: ## docker build wunder/hundi (prod), wunder/hundi-dev, wunder/hundi-jupyter, wunder/kairosdb, wunder/grafana
	docker build --target prod --tag $(IMAGE_PREFIX)wunder/hundi:$(IMAGE_TAG) .
	docker build --target dev --tag $(IMAGE_PREFIX)wunder/hundi-dev:$(IMAGE_TAG) .
	docker build --target jupyter --tag $(IMAGE_PREFIX)wunder/hundi-jupyter:$(IMAGE_TAG) .
	docker build --file deploy/kairosdb/Dockerfile --tag $(IMAGE_PREFIX)wunder/kairosdb:$(IMAGE_TAG) .
	docker build --file deploy/grafana/Dockerfile --tag $(IMAGE_PREFIX)wunder/grafana:$(IMAGE_TAG) .

# Kubernetes (deploy/k8s) and Grafana (deploy/grafana) targets live beside their files.
-include deploy/k8s/k8s.mk
-include deploy/grafana/grafana.mk

.PHONY: notebooks jupyter
notebooks: venv ## Run every notebook headless against fresh simulator data (NOTEBOOK_OUT=dir keeps the executed copies)
	$(BIN)/python -m hundi.research.notebooks $(if $(NOTEBOOK_OUT),--out $(NOTEBOOK_OUT),)

jupyter: venv ## JupyterLab on 127.0.0.1 with hundi installed (.jupyter.env; JUPYTER_TOKEN from .secret.jupyter.env)
	$(BIN)/python -m hundi.research.jupyter
