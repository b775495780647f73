# Every target sets up what it needs: a fresh clone only needs Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help serve test lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# uv installs what pip would, from the same index, in seconds instead of a minute (a minute of the ten that
# `make test` has on a 2-core machine); pip takes over where uv cannot (no wheel for the platform, no index).
INSTALL = $(BIN)/python -m uv pip install --quiet --python $(BIN)/python
PIP_INSTALL = $(BIN)/python -m pip install --quiet

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) uv || $(PIP_INSTALL) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(INSTALL) -e '.[server]' || $(PIP_INSTALL) -e '.[server]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(INSTALL) -e '.[dev]' || $(PIP_INSTALL) -e '.[dev]'
	@touch $@ $(VENV)/.installed

serve: $(VENV)/.installed ## create .venv, install, migrate and start the server on 127.0.0.1:8000
	$(BIN)/casework serve

# The suite starts many Python processes (servers, CLI commands): each imports what the one before compiled,
# even where the environment says PYTHONDONTWRITEBYTECODE (compiling FastAPI, SQLAlchemy & co. again in every
# process doubled their start-up).
test: $(VENV)/.installed-dev ## install the dev dependencies and run the whole suite (SQLite and PostgreSQL)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

lint: $(VENV)/.installed-dev ## ruff and mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed-dev ## run every benchmark under bench/ and write bench/RESULTS.md
	$(BIN)/python -m bench

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
