PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
CONFIG ?= wsgw.yaml
HOST   ?= 127.0.0.1
PORT   ?= 8080
NODE_RUNTIME := wsgw/runtimes/node
NODE_STAMP   := $(NODE_RUNTIME)/node_modules/.installed

.PHONY: run test lint typecheck pytest fuzz soak browser-deps node-runtime bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## node-runtime: the AWS SDK for JavaScript v3 for Node.js handlers, into wsgw/runtimes/node/node_modules (npm ci)
node-runtime: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_RUNTIME)/package.json $(NODE_RUNTIME)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make node-runtime: npm is missing; install the Debian package npm (apt-get install npm)" >&2; exit 1; }
	npm ci --prefix $(NODE_RUNTIME) --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

## run: start the gateway with the example chat API on the in-memory registry
run: $(STAMP) $(NODE_STAMP)
	$(BIN)/wsgw run -c $(CONFIG) --host $(HOST) --port $(PORT)

## test: lint, type-check and run every test (the browser tests need Debian's chromium and nodejs)
test: lint typecheck browser-deps pytest

## browser-deps: Debian's chromium (Playwright drives it; no browser is downloaded) and node (the JS client's tests)
browser-deps:
	@for pkg in chromium:chromium node:nodejs; do \
	  cmd=$${pkg%%:*}; deb=$${pkg##*:}; \
	  command -v $$cmd >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y $$deb >/dev/null || { apt-get update >/dev/null && apt-get install -y $$deb >/dev/null; } || exit 1; \
	  else echo "$$cmd is missing: install Debian's $$deb package (sudo apt-get install -y $$deb)"; exit 1; fi; \
	done

lint: $(STAMP)
	$(BIN)/ruff check wsgw handlers tests loadtest

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(NODE_STAMP)
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
