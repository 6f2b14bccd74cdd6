# `make demo` and `make test` do all the set-up: a local .venv with the package and its
# extras, and Graphviz's `dot` (scripts/ensure-dot.sh installs it when it can).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TINYGRAD_CNN_PROFILE ?= ci

.PHONY: demo test parity dot chromium clean mutate

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,digits,plots,progress,browser,notebook]'
	touch $@

$(BIN)/.parity: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test,digits,plots,progress,browser,notebook,parity]'
	touch $@

dot:
	@./scripts/ensure-dot.sh

chromium:
	@./scripts/ensure-chromium.sh

demo: $(BIN)/.installed dot
	$(BIN)/tinygrad-cnn worked --svg $(CURDIR)/graph.svg

test: $(BIN)/.installed dot chromium
	$(BIN)/python -m pytest -q -m "not parity"

parity: $(BIN)/.parity dot
	$(BIN)/python -m pytest -q -m parity

# Mutation testing with cosmic-ray of the backward rules, the Function machinery and gradcheck (over an hour on one
# core for all of them; not in CI). One part: .venv/bin/python mutation/run.py --modules FILE ... --tests FILE ...
mutate: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[test,mutate]'
	$(BIN)/python mutation/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
