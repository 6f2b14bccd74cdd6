# `make demo` and `make test` do all the set-up: a local .venv with the package and its
# extras, and Graphviz's `dot` (scripts/ensure-dot.sh installs it when it can).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TINYGRAD_CNN_PROFILE ?= ci

.PHONY: demo test parity dot clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(BIN)/.parity: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test,parity]'
	touch $@

dot:
	@./scripts/ensure-dot.sh

demo: $(BIN)/.installed dot
	$(BIN)/python examples/value_basics.py

test: $(BIN)/.installed dot
	$(BIN)/python -m pytest -q -m "not parity"

parity: $(BIN)/.parity dot
	$(BIN)/python -m pytest -q -m parity

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
