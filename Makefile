# Galaxy Express. `make run` and `make test` are all a new user needs; `make help` lists the rest.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/local.ini
WORKERS ?= 1
THRIFT_WORKERS ?= $(WORKERS)
BASEPLATE_THRIFT := $(shell $(BIN)/python -c 'import baseplate.thrift, os; print(os.path.dirname(baseplate.thrift.__file__))' 2>/dev/null)

# Only the folders that exist (scripts/ may not yet), or ruff fails on the missing one.
LINT_PATHS := $(wildcard galaxy_express tests scripts migrations)

RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# scripts/ is linted once it exists.

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The virtualenv is rebuilt only when the pinned requirements change.
$(RUNTIME_STAMP): requirements/runtime.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/runtime.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	@touch $@

$(DEV_STAMP): requirements/dev.txt $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip check
	@touch $@

.PHONY: install
install: $(RUNTIME_STAMP) ## Create .venv and install the service

.PHONY: install-dev
install-dev: $(DEV_STAMP) ## Install the test, lint and benchmark tools too

.PHONY: run
run: $(RUNTIME_STAMP) ## Install, migrate, serve HTTP :9090 and Thrift :9091 (WORKERS=n), Redis if none, reporter
	$(BIN)/python -m galaxy_express.launcher --config $(CONFIG) --workers $(WORKERS) --thrift-workers $(THRIFT_WORKERS) $(RUN_ARGS)

.PHONY: migratedb
migratedb: $(RUNTIME_STAMP) ## Apply the database migrations (DATABASE_URL or the config's db.url)
	$(BIN)/python -m galaxy_express.migrate --config $(CONFIG) upgrade

.PHONY: dropdb
dropdb: $(RUNTIME_STAMP) ## Drop every table of the service
	$(BIN)/python -m galaxy_express.migrate --config $(CONFIG) drop

.PHONY: resetdb
resetdb: dropdb migratedb ## Drop and re-create the database

.PHONY: shell
shell: migratedb ## baseplate-shell with db, redis and operator helpers
	$(BIN)/python -m galaxy_express.shell $(CONFIG)

.PHONY: rebuild-spam-counts
rebuild-spam-counts: $(RUNTIME_STAMP) ## Rebuild every Redis spam count from the stored reports
	$(BIN)/python -m galaxy_express.inbox.rebuild --config $(CONFIG)

.PHONY: reports
reports: $(RUNTIME_STAMP) ## Run the periodic task reporter alone
	$(BIN)/baseplate-script $(CONFIG) galaxy_express.reports.runner:run

.PHONY: test
test: $(DEV_STAMP) ## Lint, type-check and run every test (real Redis, SQLite, PostgreSQL)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/python -m gevent.monkey --module pytest

.PHONY: lint
lint: $(DEV_STAMP) ## Format and fix lint
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

.PHONY: thrift
thrift: $(RUNTIME_STAMP) ## Regenerate the committed Thrift code from the IDL
	@command -v thrift >/dev/null || { echo "needs the Thrift compiler (Debian: apt-get install thrift-compiler)"; exit 1; }
	rm -rf build/thrift && mkdir -p build/thrift
	thrift --gen py -I $(BASEPLATE_THRIFT) -out build/thrift galaxy_express/thrift/galaxy_express.thrift
	rm -rf galaxy_express/thrift/gen && cp -r build/thrift/galaxy_express/thrift/gen galaxy_express/thrift/gen
	rm -f galaxy_express/thrift/gen/*-remote

.PHONY: bench
bench: $(DEV_STAMP) ## Benchmark (starts its own servers; prints and writes a table and a chart; BENCH_ARGS="--help")
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

.PHONY: soak
soak: $(DEV_STAMP) ## Minutes of mixed traffic, then check every invariant
	$(BIN)/python scripts/soak.py

NODES ?= 2
CLUSTER_ARGS ?=

.PHONY: cluster
cluster: $(RUNTIME_STAMP) ## NODES=n machines (network namespaces, root) behind HAProxy :9090/:9091, PostgreSQL, Redis Cluster
	$(BIN)/python scripts/cluster.py --nodes $(NODES) $(CLUSTER_ARGS)

.PHONY: cluster-faults
cluster-faults: $(DEV_STAMP) ## Minutes of traffic through HAProxy while a node and a Redis master are lost (root)
	$(BIN)/python scripts/cluster_faults.py --nodes $(NODES)

.PHONY: lock
lock: ## Re-pin requirements/*.txt from requirements/*.in in a scratch venv
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip install --quiet --upgrade pip
	build/lock/bin/pip install --quiet -r requirements/runtime.in && build/lock/bin/pip freeze --exclude-editable > requirements/runtime.txt
	build/lock/bin/pip install --quiet -r requirements/dev.in && build/lock/bin/pip freeze --exclude-editable > requirements/dev.txt
	build/lock/bin/pip check

.PHONY: clean
clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var build
