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
LINT_PATHS := $(wildcard galaxy_express tests scripts migrations noxfile.py)

# The stamps name the Python minor version: `make run PYTHON=python3.13` rebuilds a .venv
# made by another Python instead of reusing it.
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
RUNTIME_STAMP := $(VENV)/.runtime-installed-$(PY_VERSION)
DEV_STAMP := $(VENV)/.dev-installed-$(PY_VERSION)

# The locks override three requirements (requirements/overrides.txt says why: two trees that
# nothing we run imports, and a stale packaging cap), so `pip check` must report exactly
# those, and nothing else.
OVERRIDDEN := ^(baseplate 2\.7\.1 requires boto3, which is not installed|formenergy-observability 0\.3\.2 (requires dagster, which is not installed|has requirement packaging<22))
PIP_CHECK := $(BIN)/python -m pip check | grep -vE '$(OVERRIDDEN)' | { ! grep .; }
# Installs exactly the lock: every package pinned and hashed, nothing resolved at install time.
PIP_SYNC := $(BIN)/python -m pip install --quiet --require-hashes --no-deps
UV_LOCK := build/lock/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --override requirements/overrides.txt --custom-compile-command "make lock"

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
		'{ name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1) } \
		END { for (i = 1; i <= NR; i++) printf "  make %-*s  %s\n", width, name[i], text[i] }'

# The virtualenv is rebuilt only when the lock, the project or the Python changes.
$(RUNTIME_STAMP): requirements/runtime.txt pyproject.toml setup.py
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PY_VERSION)" ]; then rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_SYNC) -r requirements/runtime.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PIP_CHECK)
	@touch $@

$(DEV_STAMP): requirements/dev.txt $(RUNTIME_STAMP)
	$(PIP_SYNC) -r requirements/dev.txt
	$(PIP_CHECK)
	@touch $@

.PHONY: install
install: $(RUNTIME_STAMP) ## Create .venv and install the service

.PHONY: install-dev
install-dev: $(DEV_STAMP) ## Install the test, lint and benchmark tools too

.PHONY: run
run: $(RUNTIME_STAMP) ## Install, migrate, serve HTTP :9090 and Thrift :9091 (WORKERS=n), Redis if none, reporter
	$(BIN)/python -m galaxy_express.runtime.launcher --config $(CONFIG) --workers $(WORKERS) --thrift-workers $(THRIFT_WORKERS) $(RUN_ARGS)

.PHONY: migratedb
migratedb: $(RUNTIME_STAMP) ## Apply the database migrations (DATABASE_URL or the config's db.url)
	$(BIN)/python -m galaxy_express.runtime.migrate --config $(CONFIG) upgrade

.PHONY: dropdb
dropdb: $(RUNTIME_STAMP) ## Drop every table and the Redis keys under redis.key_prefix (asks; FORCE=1 off a terminal)
	FORCE=$(FORCE) $(BIN)/python -m galaxy_express.runtime.migrate --config $(CONFIG) drop

.PHONY: resetdb
resetdb: dropdb migratedb ## Drop (as dropdb) and re-create the database

.PHONY: shell
shell: migratedb ## baseplate-shell with db, redis and operator helpers
	$(BIN)/python -m galaxy_express.runtime.shell $(CONFIG)

.PHONY: rebuild-spam-counts
rebuild-spam-counts: $(RUNTIME_STAMP) ## Rebuild every Redis spam count from the stored reports
	$(BIN)/python -m galaxy_express.runtime.rebuild --config $(CONFIG)

.PHONY: reports
reports: $(RUNTIME_STAMP) ## Run the periodic task reporter alone (says so when another holds the windows)
	$(BIN)/python -m galaxy_express.runtime.serve script $(CONFIG) galaxy_express.runtime.reporter:run

.PHONY: prune
prune: $(RUNTIME_STAMP) ## One bounded round of retention pruning (report files, webhook log, idempotency keys, inbox changes)
	$(BIN)/python -m galaxy_express.runtime.serve script $(CONFIG) galaxy_express.runtime.reporter:prune

.PHONY: test
test: $(DEV_STAMP) ## Lint, type-check and run every test (real Redis, SQLite, PostgreSQL)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m gevent.monkey --module pytest

.PHONY: test-fast
test-fast: $(DEV_STAMP) ## The edit loop: every test not marked slow, no lint (GE_TEST_REDIS_DB applies)
	$(BIN)/python -m gevent.monkey --module pytest -m "not slow" -x $(PYTEST_ARGS)

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

# nox finds python3.X on PATH; pyenv's versions are looked up too, where pyenv is used.
PYENV_BINS := $(subst $(eval) ,:,$(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.1[1-9]*/bin))

.PHONY: check-pythons
check-pythons: $(DEV_STAMP) ## Install and smoke-test on CPython 3.11, 3.12 and 3.13 (those found)
	PATH="$(PYENV_BINS):$$PATH" $(BIN)/nox --noxfile noxfile.py $(NOX_ARGS)

.PHONY: bench
bench: $(DEV_STAMP) ## Benchmark (own servers; writes var/bench/, --record updates docs/; BENCH_ARGS="--help")
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

PROFILE_ARGS ?= inbox --callgrind
.PHONY: profile
profile: $(DEV_STAMP) ## One request's CPU in-process: µs, callgrind instructions, cProfile (PROFILE_ARGS="--help")
	$(BIN)/python scripts/profile_requests.py $(PROFILE_ARGS)

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
lock: ## Re-lock requirements/*.txt from pyproject.toml with uv (hashes; LOCK_ARGS=--upgrade)
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip install --quiet uv==0.13.9
	$(UV_LOCK) $(LOCK_ARGS) -o requirements/runtime.txt
	$(UV_LOCK) $(LOCK_ARGS) --extra dev --constraint requirements/runtime.txt -o requirements/dev.txt

.PHONY: clean
clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) .nox var build
