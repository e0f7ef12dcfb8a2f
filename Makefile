PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
CONFIG ?= wsgw.yaml
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test lint typecheck pytest fuzz soak bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## run: start the gateway with the example chat API on the in-memory registry
run: $(STAMP)
	$(BIN)/wsgw run -c $(CONFIG) --host $(HOST) --port $(PORT)

## test: lint, type-check and run every test
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check wsgw handlers tests loadtest

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

## fuzz: the property tests of tests/test_fuzz.py with 3,000 examples each (minutes; `make test` runs 30)
fuzz: $(STAMP)
	WSGW_FUZZ=long $(BIN)/python -m pytest -q -p no:randomly --timeout 3600 tests/test_fuzz.py

## soak: minutes of churn, pushes, broadcasts and a node restart on two nodes + Redis; RSS and fds must be flat
soak: $(STAMP)
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## bench: the full benchmark suite (<= 10 min on 2 cores) -> loadtest/REPORT.md, loadtest/plots/, loadtest/results/
bench: $(BENCH_STAMP)
	$(BIN)/python -m loadtest suite --full $(BENCH_ARGS)

## bench-quick: the same scenarios, shorter and smaller (<= 2 min)
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m loadtest suite $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
