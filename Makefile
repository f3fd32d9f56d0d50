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

# The main job: replay the bundled sample into ./data (embedded chDB + SQLite; the
# same dataflow as `python -m bytewax.run dataflow`, with its closing summary),
# then write what the product is for: a class's diagnosis report and one student's
# page for the family, from the sample's roster of names.
SAMPLE := writech/sample
run: setup
	$(BIN)/writech replay $(SAMPLE)/events.jsonl.gz --data-dir data
	@mkdir -p data/reports
	$(BIN)/writech report class class-0000 --data-dir data --roster $(SAMPLE)/roster.csv --out data/reports/class-0000.html
	$(BIN)/writech report parent stu-000012 --data-dir data --roster $(SAMPLE)/roster.csv --out data/reports/parent-stu-000012.html

# The whole suite: lint, types, and every test against real services. The tests
# run in TEST_PROCESSES processes (pytest-xdist): the slow ones mostly wait on
# outages, deadlines and restarts, so two halve the suite's time on two cores.
# Each test has services or databases of its own (free ports, fresh names).
TEST_PROCESSES ?= 2
test: setup services lint
	$(BIN)/python -m pytest -n $(TEST_PROCESSES)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Services the tests need that pytest does not start itself.
services:
	bash scripts/services.sh

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
