# The everyday commands. Each runs the tools of .venv, which `make setup` builds from the lock
# (requirements-test.lock: the runtime and the test tools, every version pinned with its hashes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pip-tools lives in its own environment so that locking never changes what .venv holds.
PIP_TOOLS := build/pip-tools
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(PIP_TOOLS)/bin/pip-compile --quiet --strip-extras \
	--generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links $(LOCK_FLAGS)

.PHONY: setup up test lint format bench lock hooks

# setup: create .venv from the lock (again whenever the lock or pyproject.toml changes)
setup: $(VENV)/.installed

$(VENV)/.installed: requirements-test.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --require-hashes -r requirements-test.lock
	$(BIN)/pip install --no-deps -e .
	touch $@

# up: the whole system on this machine (embedded broker, the four services, the demo municipality)
up: setup
	$(BIN)/marugoto up

# test: the whole suite (needs PostgreSQL at 127.0.0.1:5432, Chromium and chromedriver)
test: setup
	$(BIN)/python -m pytest

# lint: ruff, the formatting check and mypy --strict, as the pre-commit hooks and tests/test_quality.py run them
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# format: rewrite the sources as ruff formats them and fix what ruff can
format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# bench: the quick benchmark table (bench/README.md tells how to read it)
bench: setup
	$(BIN)/python -m bench --quick

# lock: regenerate both locks from pyproject.toml; pins stay unless LOCK_FLAGS=--upgrade (or --upgrade-package NAME)
lock: $(PIP_TOOLS)/bin/pip-compile
	$(PIP_COMPILE) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra test --constraint requirements.lock -o requirements-test.lock pyproject.toml

$(PIP_TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(PIP_TOOLS)
	$(PIP_TOOLS)/bin/pip install --quiet 'pip-tools>=7.4,<8'

# hooks: run ruff and mypy before every commit (.pre-commit-config.yaml)
hooks: setup
	$(BIN)/pre-commit install
