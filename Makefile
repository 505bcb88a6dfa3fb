# Homework API. `make run` serves a demo on SQLite; `make test` runs every check.
# The virtual environment is built from the lock files, so a machine needs only Python 3.11+.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test lint typecheck pytest openapi lock clean bench client client-check test-client \
	lint-openapi redocly

# The TypeScript client (clients/typescript/) is generated from openapi/openapi.json. Its
# checks need node and npm; without them `make test-client` says it skipped them.
TS_DIR     := clients/typescript
TS_STAMP   := $(TS_DIR)/node_modules/.installed
HAVE_NODE  := $(shell command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && echo yes)
OPENAPI_TS := node_modules/.bin/openapi-typescript ../../openapi/openapi.json --default-non-nullable false

# Redocly CLI lints openapi/openapi.json (redocly.yaml: the recommended rules). Pinned in its own
# folder, installed from its lock; tests/test_openapi_lint.py runs it. No telemetry, no update
# check: the lint reaches for nothing beyond this machine.
REDOCLY_DIR   := tools/redocly
REDOCLY_STAMP := $(REDOCLY_DIR)/node_modules/.installed
REDOCLY_ENV   := REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

install: $(STAMP)

$(STAMP): requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

run: install
	$(BIN)/homework serve --demo

test: install lint typecheck pytest test-client

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy app

pytest: install redocly
	@scripts/ensure-postgres
	$(BIN)/pytest -n 2 --dist worksteal

# Installs the pinned Redocly CLI for the lint test (nothing without node, where the test skips).
redocly:
ifeq ($(HAVE_NODE),yes)
	@$(MAKE) --no-print-directory $(REDOCLY_STAMP)
else
	@echo "SKIPPED: installing Redocly CLI (node and npm are not on PATH)"
endif

$(REDOCLY_STAMP): $(REDOCLY_DIR)/package.json $(REDOCLY_DIR)/package-lock.json
	cd $(REDOCLY_DIR) && npm ci --prefer-offline --no-audit --no-fund
	touch $@

# The lint on its own (the test runs the same command).
lint-openapi: $(REDOCLY_STAMP)
	$(REDOCLY_ENV) $(REDOCLY_DIR)/node_modules/.bin/redocly lint --config redocly.yaml openapi/openapi.json

openapi: install
	$(BIN)/homework openapi
ifeq ($(HAVE_NODE),yes)
	@$(MAKE) --no-print-directory client
endif

# Regenerate clients/typescript/src/schema.d.ts from openapi/openapi.json.
client: $(TS_STAMP)
	cd $(TS_DIR) && $(OPENAPI_TS) -o src/schema.d.ts

# Fail if src/schema.d.ts is not what openapi/openapi.json generates.
client-check: $(TS_STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd $(TS_DIR) && $(OPENAPI_TS) -o "$$tmp/schema.d.ts" >/dev/null && \
	if diff -u src/schema.d.ts "$$tmp/schema.d.ts"; then \
		echo "clients/typescript/src/schema.d.ts matches openapi/openapi.json"; \
	else \
		echo "clients/typescript/src/schema.d.ts is stale: run make client" >&2; exit 1; \
	fi

$(TS_STAMP): $(TS_DIR)/package.json $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --prefer-offline --no-audit --no-fund
	touch $@

# npm ci, the drift check, the package (npm pack builds dist/; the tarball installed into a
# scratch app, compiled against and run from plain Node), tsc over src/ and examples/ (which
# import dist/ by the package's name), then examples/flow.ts; each run against a server on a
# temporary database.
test-client: install
ifeq ($(HAVE_NODE),yes)
	cd $(TS_DIR) && npm ci --prefer-offline --no-audit --no-fund
	touch $(TS_STAMP)
	@$(MAKE) --no-print-directory client-check
	VENV=$(abspath $(VENV)) $(TS_DIR)/test-package.sh
	cd $(TS_DIR) && node_modules/.bin/tsc --noEmit
	VENV=$(abspath $(VENV)) $(TS_DIR)/run-example.sh
else
	@echo "SKIPPED: the TypeScript client check (node and npm are not on PATH)"
endif

# Re-resolve the lock files after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache homework.db* $(TS_DIR)/node_modules \
		$(TS_DIR)/dist $(REDOCLY_DIR)/node_modules

# The API under load beside a bare Starlette + asyncpg ceiling (PostgreSQL; installs wrk).
bench: install
	@scripts/ensure-postgres
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.rate_limit_cost
	$(BIN)/python -m bench.revocation_cost
	$(BIN)/python -m bench.metrics_cost
	$(BIN)/python -m bench.fhir_cost
