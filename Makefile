# Screenreel: `make demo` runs a real job end to end; `make test` runs the whole suite.
# Both install what they need when it is missing (system packages, a virtualenv with pinned packages)
# and are safe to run again.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv is made again when the pins or the CLI's packaging change (scripts/ensure-venv.sh installs both).
LOCK_HASH := $(shell cat requirements.lock cli/pyproject.toml | sha256sum | cut -c1-16)
VENV_STAMP := $(VENV)/.installed-$(LOCK_HASH)

.PHONY: demo test serve lint openapi sysdeps services venv migrate static clean

demo: sysdeps venv
	$(PY) scripts/demo.py

# The import contracts (pyproject.toml, docs/architecture.md) first: seconds, and a broken floor plan fails
# before twenty minutes of tests.
test: sysdeps venv services
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_ARGS)

# honcho gives the Procfile's first process (web) PORT=8000: the port of SCREENREEL_PUBLIC_URL's default,
# so the signed links it hands out point at it (honcho's own default would be 5000).
serve: sysdeps venv migrate static
	@echo "Screenreel on http://127.0.0.1:8000: API /v1/, docs /api/docs/, admin /admin/"
	@echo "  first client and API key:  $(PY) manage.py create_client \"Acme\""
	@echo "  an operator for the admin: $(PY) manage.py createsuperuser"
	$(VENV)/bin/honcho start --port 8000

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports --no-cache

# The API's OpenAPI 3.1 document, checked in; tests/test_openapi.py fails when it drifts from the code.
openapi: venv
	$(PY) manage.py spectacular --validate --fail-on-warn --format openapi-json --file docs/openapi.json

migrate: venv
	$(PY) manage.py migrate --noinput

# The admin's CSS and JS, served by WhiteNoise from var/static under every server.
static: venv
	$(PY) manage.py collectstatic --noinput -v 0

sysdeps:
	@bash scripts/ensure-sysdeps.sh

services:
	@bash scripts/ensure-services.sh

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.lock cli/pyproject.toml
	@bash scripts/ensure-venv.sh "$(VENV)"
	@rm -f $(VENV)/.installed-* && touch $@

clean:
	rm -rf var/work var/test-work var/test-media
