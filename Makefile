# oomguard: `make demo` and `make test` work on a fresh machine with only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tests/support/typecheck_tree.py
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 4 --cov --cov-report=term:skip-covered

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_sampler.py
	$(BIN)/python tests/benchmarks/bench_middleware.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
