# Two entry points a new user needs: `make demo` and `make test`.
# Everything else here serves those two (and `make bench`, `make lint`).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Debian packages the test bed drives for real: Pebble and its challenge test
# server (the CA), mosquitto (an MQTT broker for device certificates), openssl,
# BIND (RFC 2136 dynamic updates with TSIG), PostgreSQL (the shared store) and systemd
# (systemd-analyze verifies the units `acmeali schedule install` writes).
DEB_PACKAGES := pebble mosquitto mosquitto-clients openssl bind9 bind9-utils postgresql systemd
DEB_BINARIES := pebble pebble-challtestsrv mosquitto mosquitto_pub mosquitto_sub openssl \
                named tsig-keygen systemd-analyze
# PostgreSQL's server binaries are not on PATH on Debian: look in its versioned directory.
DEB_GLOBS    := /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/postgres \
                /usr/lib/postgresql/*/bin/pg_dump
# The suite waits on peers more than it computes: a few workers more than cores.
PYTEST_WORKERS ?= 4

.PHONY: demo test lint bench peers venv clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

peers:
	@missing=""; for b in $(DEB_BINARIES); do command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; done; \
	for g in $(DEB_GLOBS); do [ -x "$$g" ] || missing="$$missing $$g"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages for the test bed (missing:$$missing)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	  else echo "error: need root or sudo to apt-get install $(DEB_PACKAGES); install them and re-run" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES) \
	    || { echo "error: apt-get could not install $(DEB_PACKAGES); install them by hand and re-run" >&2; exit 1; }; \
	fi

test: $(STAMP) peers
	ACMEALI_REQUIRE_PEERS=1 $(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check acmeali tests bench
	$(VENV)/bin/mypy

demo: $(STAMP) peers
	$(PY) -m tests.demo

bench: $(STAMP) peers
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .demo bench/.work
