# Two commands on a fresh Debian machine (as root):
#   make demo   - install what is needed, start the local ACME lab + the service, issue a certificate
#   make test   - install what is needed and run the whole test suite
VENV ?= .venv
# acme2certifier (the tests' second ACME CA) pins its own libraries: a venv of its own.
A2C_VENV ?= .venv-a2c
A2C_VERSION := 0.46.3
# make demo PORT=8001 DEMO_HOST=0.0.0.0: where the demo's service listens
DEMO_HOST ?= 127.0.0.1
PORT ?= 8000
PY := $(VENV)/bin/python
APT_PACKAGES := pebble bind9 bind9-utils dnsutils openssh-server openssh-client nginx haproxy chromium pdns-server pdns-backend-sqlite3 knot pgbouncer socat prometheus systemd softhsm2

.PHONY: demo test setup system-packages lint bench

demo: setup
	$(VENV)/bin/certautopilot demo --host $(DEMO_HOST) --port $(PORT)

test: setup node_modules/.installed
	$(PY) -m pytest -q -n 3 --dist loadfile -m "not serial"
	$(PY) -m pytest -q -m serial

setup: system-packages $(VENV)/.installed $(A2C_VENV)/.installed-$(A2C_VERSION)

system-packages:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi

$(VENV)/.installed: pyproject.toml lab/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" -e ./lab
	touch $@

$(A2C_VENV)/.installed-$(A2C_VERSION):
	python3 -m venv $(A2C_VENV)
	$(A2C_VENV)/bin/pip install -q acme2certifier==$(A2C_VERSION) gunicorn
	touch $@

# Test-only JavaScript (axe-core for the accessibility tests), from package-lock.json;
# Node.js and npm come with the machine.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

lint: setup
	$(VENV)/bin/ruff check src lab tests $(wildcard bench)
	$(VENV)/bin/ruff format --check src lab tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) bench/issue_batch.py
