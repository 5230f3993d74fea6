# Two entry points: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= config.toml

.PHONY: setup run build test lint clean

setup: $(STAMP)

# Reinstall when the dependency list changes; the stamp makes repeated runs instant.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/digest --config $(CONFIG) run

lint: $(STAMP)
	$(BIN)/ruff check digest tests bench
	$(BIN)/ruff format --check digest tests bench
	$(BIN)/mypy --strict digest

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) var public .pytest_cache .mypy_cache .ruff_cache
