# Two commands on a fresh Debian machine (as root):
#   make demo   - install what is needed, start the local ACME lab + the service, issue a certificate
#   make test   - install what is needed and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := pebble bind9 bind9-utils dnsutils openssh-server openssh-client nginx haproxy chromium pdns-server pdns-backend-sqlite3 knot

.PHONY: demo test setup system-packages lint bench

demo: setup
	$(VENV)/bin/certautopilot demo

test: setup
	$(PY) -m pytest -q

setup: system-packages $(VENV)/.installed

system-packages:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi

$(VENV)/.installed: pyproject.toml lab/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" -e ./lab
	touch $@

lint: setup
	$(VENV)/bin/ruff check src lab tests $(wildcard bench)
	$(VENV)/bin/ruff format --check src lab tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) bench/issue_batch.py
