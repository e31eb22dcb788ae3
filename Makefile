# `make run` and `make test` create and reuse .venv themselves; nothing but Python 3.11+ is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The main job: the web app in simulator mode (no LINE credentials) on an embedded Redis.
run: $(STAMP)
	$(BIN)/hwbot profiles check
	$(BIN)/hwbot serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/hwbot profiles check --strict

clean:
	rm -rf $(VENV) var
