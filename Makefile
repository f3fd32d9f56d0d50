# Two commands (see README): `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint services clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The main job: replay the bundled sample into ./data (embedded chDB + SQLite).
run: setup
	$(BIN)/python -m bytewax.run dataflow

# The whole suite: lint, types, and every test against real services.
test: setup services lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Services the tests need that pytest does not start itself.
services:
	bash scripts/services.sh

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
