# co-sell sync: the two commands a newcomer needs are `make demo` and `make test`.
# Every target bootstraps .venv from requirements.lock when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
export PYTHONPATH := $(CURDIR):$(CURDIR)/include:$(CURDIR)/plugins
# Airflow state for local runs lives inside the repo (git-ignored).
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
AIRFLOW_PORT ?= 8080

.PHONY: install demo test lint format airflow bench soak lock clean

$(VENV)/.installed: requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --python $(PY) requirements.lock
	@touch $@

install: $(VENV)/.installed ## create .venv with the locked dependencies

demo: install ## run the main job against the local emulators and print a summary
	$(PY) -m cosell_local.demo

test: install ## run the whole test suite
	$(PY) -m pytest -n 2 --dist loadgroup -q

lint: install ## ruff, clean
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

airflow: install ## local Airflow on SQLite wired to the emulators (SEED=1: with the demo book)
	$(PY) -m cosell_local.airflow_ui --port $(AIRFLOW_PORT) $(if $(SEED),--seed)

bench: install ## benchmarks: API economy, quota discipline, memory, parse time (under 20 minutes)
	$(PY) -m bench

soak: install ## fault soak: 10,000-record book under throttling, 5xx, timeouts, task failures (15-25 min)
	$(PY) -m bench.soak

lock: ## re-resolve requirements.txt into requirements.lock
	@test -x $(VENV)/bin/uv || ($(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install -q uv==$(UV_VERSION))
	$(VENV)/bin/uv pip compile requirements.txt -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) .airflow .demo
