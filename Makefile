# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install simsps with what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo lint test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,distributed]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/simsps reproduce --quick --out out/reproduce

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=15

test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 --dist worksteal -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/simulate.py
	$(BIN)/python benchmarks/io.py
	$(BIN)/python benchmarks/analysis.py
	$(BIN)/python benchmarks/reproduce.py

clean:
	rm -rf $(VENV) build *.egg-info
