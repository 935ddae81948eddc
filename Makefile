# Two commands for a newcomer: `make run` and `make test`. Both set up .venv first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(BIN)/alpha init
	$(BIN)/alpha demo
	$(BIN)/alpha status
	@echo "Console: http://localhost:8501 (demo users ae, approver, ops, admin; password: ALPHA_DEMO_PASSWORD, or generated and printed below)"
	@bash -c 'trap "kill 0" EXIT; $(BIN)/alpha up & ALPHA_DEMO=1 $(BIN)/streamlit run console/app.py'

test: setup
	$(BIN)/python -m pytest

# Benchmarks against the bare cost of the same work: benchmarks/results.json and benchmarks/RESULTS.md.
# Several minutes; `make bench BENCH_ARGS=--quick` for a smoke run, BENCH_ARGS="--only gateway" for one.
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .hypothesis
