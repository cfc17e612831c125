# Sluice: the two everyday commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1:8000

.PHONY: setup demo test install install-test migrate examples step-user clean

STEP_USER ?= $(or $(SLUICE_STEP_USER),sluice-step)

## setup: install what the server runs (requirements.txt) into .venv, migrate, load examples/, and as root create the user steps run as (idempotent)
setup: install migrate examples step-user

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# What tests and bench/ add (requirements-test.txt); only `make test` installs it.
install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

migrate: install
	$(PY) manage.py migrate --noinput

examples: migrate
	$(PY) manage.py loadjobs examples/*.yaml

# A root server runs steps as this unprivileged user (SLUICE_STEP_USER); see docs/operations.md.
step-user:
	@if [ "$$(id -u)" = 0 ] && ! id -u $(STEP_USER) >/dev/null 2>&1; then \
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $(STEP_USER) && echo "Created the step user $(STEP_USER)."; \
	fi

## demo: setup, create the local-only admin/admin user, serve on http://$(HOST)
## (another address: make demo HOST=0.0.0.0:8080); it starts by saying what this host lacks
demo: setup
	DJANGO_SUPERUSER_PASSWORD=admin $(PY) manage.py createsuperuser --noinput --username admin --email admin@localhost 2>/dev/null || true
	@echo "Sluice on http://$(HOST)/  (admin: admin / admin, for local use only; another address: make demo HOST=0.0.0.0:8000)"
	$(PY) manage.py up --addr $(HOST)

## test: install, then run the whole suite: fast tests (SQLite, stub broker), then the
## real-servers runs (the fast tests again on PostgreSQL, then worker processes on
## PostgreSQL and Redis, and RabbitMQ; the servers started on loopback by the suite itself)
test: install-test step-user
	$(PY) -m pytest
	$(PY) -m tests.realservers

clean:
	rm -rf $(VENV) var .pytest_cache
