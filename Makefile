# Two entry points: `make run` and `make test`. Both create .venv on first use; `make run`
# installs what running needs, `make test` adds the test and lint tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-stamp
DEV := $(VENV)/.dev-stamp
CONFIG ?= config.toml

.PHONY: setup run test lint clean bench accuracy

setup: $(DEV)

# Reinstall when the dependency list changes; the stamps make repeated runs instant.
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(RUNTIME)
	$(BIN)/digest --config $(CONFIG) run

lint: $(DEV)
	$(BIN)/ruff check digest tests bench
	$(BIN)/ruff format --check digest tests bench
	$(BIN)/mypy --strict digest tests bench

# Tests run on every core (pytest-xdist): every test already has its own folders, ports,
# processes and database, so any two can run at once.
test: lint
	$(BIN)/pytest -q -n auto

# Precision and recall of officials and topics over the seeds and tests/data/unseen/, per
# official and per topic, with every disagreement (tests/accuracy.py; the floors `make test`
# holds are in tests/data/accuracy.json).
accuracy: $(DEV)
	$(BIN)/python tests/accuracy.py

clean:
	rm -rf $(VENV) var public .pytest_cache .mypy_cache .ruff_cache

# Scale benchmarks (not part of `make test`): installs nginx, wrk, postfix's smtp-sink and
# PostgreSQL from Debian if missing (postfix for its sink alone: "No configuration" leaves the
# server unset; PostgreSQL's binaries only: the benchmark starts a server of its own).
BENCH_SIZES ?= 100 1000 10000
bench: $(DEV)
	@PATH="$$PATH:/usr/sbin"; command -v nginx >/dev/null && command -v wrk >/dev/null \
	  && command -v smtp-sink >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  s=""; [ "$$(id -u)" -eq 0 ] || s=sudo; \
	  echo "postfix postfix/main_mailer_type select No configuration" | $$s debconf-set-selections; \
	  $$s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -qq \
	    nginx-light wrk postfix postgresql; }
	BENCH_SIZES="$(BENCH_SIZES)" $(BIN)/python bench/run.py
