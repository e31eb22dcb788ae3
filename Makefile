# `make run` and `make test` create and reuse .venv themselves; nothing but Python 3.11+ is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/hwbot profiles check
	$(BIN)/hwbot slots noto --days 14

test: $(STAMP)
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/hwbot profiles check --strict

clean:
	rm -rf $(VENV) var
