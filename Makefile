# medal — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medal-installed
# The web UI (web/) builds into the annotation service's static folder; rebuilt when its sources change.
UI_OUT := services/annotation/static
UI_STAMP := $(UI_OUT)/.built
UI_SOURCES := web/package.json web/package-lock.json web/build.mjs web/tsconfig.json $(shell find web/src -type f 2>/dev/null)
HAVE_NPM := $(shell command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 && echo yes)

.PHONY: setup run demo test lint typecheck schemas clean ui

ifeq ($(HAVE_NPM),yes)
setup: $(STAMP) $(UI_STAMP)
else
setup: $(STAMP)
	@echo "setup: node/npm not found, the web UI is not built (/annotation/ui/ answers 503 until \`make ui\`)"
endif

# Re-installs only when the lock or the project metadata change, so running it twice is cheap and safe.
$(STAMP): requirements.lock requirements-dev.lock requirements-nodeps.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

ui: $(UI_STAMP)

$(UI_STAMP): $(UI_SOURCES)
	cd web && npm ci --no-audit --no-fund && npm run build
	@touch $(UI_STAMP)

run: setup
	$(BIN)/medal up

demo: setup
	$(BIN)/medal demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

schemas: setup
	$(BIN)/python -m proto.schema_gen

test: setup lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .medal .mypy_cache .ruff_cache web/node_modules $(UI_OUT)
