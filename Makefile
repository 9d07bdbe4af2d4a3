# wireline — the README's commands. Each target installs what it needs, so any of them
# works as the first command on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CERTS  := certs/ca.pem certs/server.pem certs/server.key.pem certs/other-ca.pem certs/expired.pem
PYTEST_ARGS ?=

.PHONY: install certs demo test check pytest format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --group test --config-settings editable_mode=compat -e '.[uvloop]'
	touch $(STAMP)

certs: $(CERTS)

$(CERTS): certs/make_certs.py | $(STAMP)
	$(BIN)/python certs/make_certs.py

demo: install certs
	$(BIN)/python examples/demo.py

check: install
	$(BIN)/ruff format --check sansio aio tests examples certs
	$(BIN)/ruff check sansio aio tests examples certs
	$(BIN)/mypy

pytest: install certs
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: check pytest

format: install
	$(BIN)/ruff format sansio aio tests examples certs
	$(BIN)/ruff check --fix sansio aio tests examples certs

clean:
	rm -rf $(VENV) certs/*.pem .mypy_cache .ruff_cache .pytest_cache
