# Two commands for a newcomer: `make run` and `make test`. Both set up .venv first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-lowest setup bench clean lock

setup: $(STAMP)

# Installs exactly the tested versions (requirements.lock, a pip constraints file); pyproject.toml holds the floors.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

# Re-pin requirements.lock to what is installed now (after changing pyproject.toml's dependencies and `make setup`).
lock:
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@{ echo "# The tested environment: every package 'make setup' installs, pinned (pip install -c requirements.lock -e '.[dev]')."; \
	   echo "# Regenerate after changing dependencies: make lock"; \
	   $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock

# `make run`: init, the demo data and a blind-review set, then console + local GHL sandbox + webhook receiver +
# worker on 127.0.0.1 (`alpha dev`); Ctrl-C stops everything. `make run DEMO=assisted` also steps the demo into the
# assisted phase so Approvals has work; other ports: make run RUN_ARGS="--console-port 8502".
run: setup
	$(if $(filter-out assisted,$(DEMO)),$(error DEMO=$(DEMO) is not known: use DEMO=assisted or leave it out))
	$(BIN)/alpha dev $(if $(filter assisted,$(DEMO)),--assisted) $(RUN_ARGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The lowest declared versions: a separate venv (.venv-lowest) with every dependency at its pyproject.toml floor,
# then the unit tests (minutes; not part of `make test`). Run it after changing a floor or adding a dependency.
test-lowest:
	PYTHON=$(PYTHON) .ci/lowest

# Benchmarks against the bare cost of the same work: benchmarks/results.json and benchmarks/RESULTS.md.
# Several minutes; `make bench BENCH_ARGS=--quick` for a smoke run, BENCH_ARGS="--only gateway" for one.
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-lowest .data .pytest_cache .hypothesis
