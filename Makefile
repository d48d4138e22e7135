# Screenreel: `make demo` runs a real job end to end; `make test` runs the whole suite.
# Both install what they need when it is missing (system packages, a virtualenv with pinned packages)
# and are safe to run again.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-16)
VENV_STAMP := $(VENV)/.installed-$(LOCK_HASH)

.PHONY: demo test serve lint sysdeps services venv migrate static clean

demo: sysdeps venv
	$(PY) scripts/demo.py

test: sysdeps venv services
	$(PY) -m pytest $(PYTEST_ARGS)

serve: sysdeps venv migrate static
	$(VENV)/bin/honcho start

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

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

$(VENV_STAMP): requirements.lock
	@bash scripts/ensure-venv.sh "$(VENV)"
	@rm -f $(VENV)/.installed-* && touch $@

clean:
	rm -rf var/work var/test-work var/test-media
