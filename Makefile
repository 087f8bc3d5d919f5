# costscaler — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help install lint test test-unit crds bench demo

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Pure Python (numpy, scipy): no C compiler needed; a change to pyproject.toml reinstalls.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## Create .venv with costscaler (editable) and the dev tools

lint: install ## ruff, mypy (strict on api/ and core/), import-linter layer contracts
	$(VENV)/bin/ruff check operator tests hack
	$(VENV)/bin/ruff format --check operator tests hack
	$(VENV)/bin/mypy operator/costscaler
	$(VENV)/bin/lint-imports

test: install ## Every test: unit, integration and e2e (builds the local cluster's tools on first use)
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

test-unit: install ## Unit tests only (nothing running needed)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

crds: install ## Regenerate crds/ from the API models and copy them into the Helm chart
	$(VENV)/bin/costscaler crds -o crds
	rm -f charts/costscaler/crds/costscaler.dev_*.yaml && cp crds/*.yaml charts/costscaler/crds/

bench: install ## Benchmarks: every tests/bench/bench_*.py script
	@set -e; for f in tests/bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

demo: install ## The main job: local cluster, chart, examples, load twin, operator, live table, report
	PYTHONPATH=hack $(PY) hack/demo.py $(DEMO_ARGS)

-include hack/cluster/cluster.mk
