# vm-creator: `make run` starts the sandbox, `make test` runs the whole suite.
# Each target bootstraps its own virtualenv in .venv the first time.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint bench services serve worker clean

help: ## show this help
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP) ## the sandbox: Slack emulator, app, worker and a simulated cloud, with a chat
	$(BIN)/vmbot sandbox

test: $(STAMP) services ## the whole suite (needs PostgreSQL and Redis; started if absent)
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) ## benchmarks; figures go in BENCHMARKS.md
	$(BIN)/python -m bench

services: ## start PostgreSQL and Redis on this machine when they are not running
	@scripts/services.sh

serve: $(STAMP) ## the Slack app (settings from the environment or .env)
	$(BIN)/vmbot serve

worker: $(STAMP) ## the Celery worker with beat
	$(BIN)/vmbot worker

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) .vmbot .pytest_cache .mypy_cache .ruff_cache
