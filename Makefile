# paymesh — the two commands a new machine needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto' | sort)

.PHONY: help install gen check-gen lint check test run bench chaos clean

# What `make check` types: the shared infrastructure and every pure domain package.
TYPED := services/common $(wildcard services/*/domain)
LINTED := services tests tools bench examples clients

help:
	@echo "make run        start the local stack (Postgres, NATS, anvil) and the mesh"
	@echo "make test       install everything needed and run the whole test suite"
	@echo "make gen        regenerate gen/ from protos/"
	@echo "make check-gen  fail if gen/ drifts from protos/"
	@echo "make lint       buf lint + ruff"
	@echo "make check      format, lint, types and the unit tier (under a minute)"
	@echo "make bench      run the benchmarks and update docs/BENCHMARKS.md"
	@echo "make chaos      the long chaos runs (1,000 payments, a kill every 3 s; one process per service, then"
	@echo "                two replicas of each + a NATS cluster + two RPC providers), three times"

# The virtualenv, the project with its dev extras, anvil from npm, and Chromium for the page tests.
$(STAMP): pyproject.toml package.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm install --no-audit --no-fund --loglevel=error
	tools/install_chromium.sh
	touch $(STAMP)

install: $(STAMP)

gen: $(STAMP)
	$(PY) tools/gen_protos.py --out gen

check-gen: $(STAMP)
	$(PY) tools/gen_protos.py --check

lint: $(STAMP)
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check $(LINTED)

# The quick gate before a commit: formatting, lint, types, and the unit tier.
check: $(STAMP)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy $(TYPED)
	$(PY) -m pytest -q -m unit -p no:cacheprovider

# Everything (what CI runs): the quick gate, buf lint, the generated-code drift
# check, then every tier; the 25 slowest tests are printed at the end.
test: $(STAMP)
	$(MAKE) --no-print-directory check
	$(VENV)/bin/buf lint
	$(PY) tools/gen_protos.py --check
	$(PY) -m pytest -q -m "not unit" --durations=25

run: $(STAMP)
	$(PY) -m tools.run_mesh

bench: $(STAMP)
	$(PY) -m bench

chaos: $(STAMP)
	for run in 1 2 3; do \
	  PAYMESH_CHAOS_PAYMENTS=$${PAYMESH_CHAOS_PAYMENTS:-1000} PAYMESH_CHAOS_KILL_EVERY=$${PAYMESH_CHAOS_KILL_EVERY:-3} \
	    $(PY) -m pytest -q -s tests/e2e/test_chaos.py tests/e2e/test_chaos_replicas.py || exit 1; \
	done

# As root in a private directory, the Postgres cluster lives under /var/tmp and
# .data/postgres links to it (tools/devstack.py): remove both.
clean:
	if [ -L .data/postgres ]; then rm -rf "$$(readlink -f .data/postgres)"; fi
	rm -rf .data
