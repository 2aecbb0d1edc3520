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

.DEFAULT_GOAL := help
.PHONY: help venv test lint typecheck check demo bench bench-stores bench-series bench-research clean services-up services-down services-status services-logs

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(BIN)/hundi: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,notebooks]'
	@touch $@

venv: $(BIN)/hundi ## Create .venv and install hundi with dev tools, notebook and JupyterLab deps

test: venv ## Run the whole test suite (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy --strict on the package
	$(BIN)/mypy

check: lint typecheck services-up test ## Everything CI checks (starts the real servers)

demo: venv ## Simulator + collector for DURATION s into ./data, then summary and a sample query
	@bash scripts/demo.sh "$(DURATION)" "$(MARKET)" "$(SYMBOLS)" "$(DEMO_STORE)"

bench: venv ## Throughput benchmarks (simulator at full speed → collector → embedded store)
	$(BIN)/python bench/run.py

bench-stores: services-up ## Cassandra and KairosDB write/read throughput on the real servers
	$(BIN)/python bench/cassandra_write.py
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

clean: ## Remove the venv, caches and demo data
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis data logs build *.egg-info src/*.egg-info

.PHONY: notebooks jupyter
notebooks: venv ## Run every notebook headless against fresh simulator data (NOTEBOOK_OUT=dir keeps the executed copies)
	$(BIN)/python -m hundi.research.notebooks $(if $(NOTEBOOK_OUT),--out $(NOTEBOOK_OUT),)

jupyter: venv ## JupyterLab on 127.0.0.1 with hundi installed (.jupyter.env; JUPYTER_TOKEN from .secret.jupyter.env)
	$(BIN)/python -m hundi.research.jupyter
