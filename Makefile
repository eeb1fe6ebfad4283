# The two commands of the README:
#   make demo   set up and run the demo shop (SQLite, Celery in-process): http://127.0.0.1:8000/
#   make test   run the whole test suite (needs PostgreSQL and Redis on 127.0.0.1, see README)
# and, for maintainers:
#   make bench  run the benchmarks and rewrite BENCHMARKS.md
#   make load   the 60 s load run under gunicorn; rewrites its section of RELIABILITY.md
#   make abuse  what it costs to steer others' lists (fake visitors, devices); rewrites its section of RELIABILITY.md
#   make lint   ruff, and the import contracts of pyproject.toml (lint-imports)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test test-postgres test-sqlite lint bench bench-tools load abuse install

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

demo: export DJANGO_DEBUG := 1
demo: install
	$(PY) manage.py migrate --no-input
	@$(PY) manage.py shell -v 0 -c "from django.contrib.auth import get_user_model as U; import sys; sys.exit(0 if U().objects.filter(username='admin').exists() else 1)" \
		|| DJANGO_SUPERUSER_PASSWORD=demo-admin $(PY) manage.py createsuperuser --no-input --username admin --email admin@example.com
	$(PY) manage.py shop_load_demo
	$(PY) manage.py recommendations_train --if-none-active
	@echo "Demo shop: http://$(HOST):$(PORT)/  shopper: demo / demo-shopper  admin: admin / demo-admin (local demo only)"
	$(PY) manage.py runserver $(HOST):$(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test-postgres: install
	RECOMMENDATIONS_TEST_DB=postgres $(PY) -m pytest

test-sqlite: install
	RECOMMENDATIONS_TEST_DB=sqlite $(PY) -m pytest -m "not no_db"

test: lint test-postgres test-sqlite

# The serving and load suites drive gunicorn with wrk, a Debian package: installed here when
# missing (as root), or named with the command that installs it.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
		echo "The benchmarks need wrk (an HTTP load generator); installing Debian's package ..."; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
		|| { echo "Could not install wrk: run 'sudo apt-get install wrk' (or your system's package) and retry."; exit 1; }; }

bench: install bench-tools
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench

load: install bench-tools
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench load --output RELIABILITY.md

abuse: install
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench abuse --output RELIABILITY.md
