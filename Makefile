# twintap: `make run` (set up, then run a virtual board serving Tap) and `make test`.
# Setup is idempotent: Debian packages via apt-get when missing, Python packages into .venv,
# device-side libraries into .cache. A second run only checks stamps.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UMQTT := .cache/mpylib/umqtt/simple.py
INTEROP := tests/interop
INTEROP_STAMP := $(INTEROP)/node_modules/.installed
DASH := tests/dashboard
DASH_STAMP := $(DASH)/node_modules/.installed
RUN_DIR ?= .twintap
TAP_PORT ?= 2000

.PHONY: setup sysdeps run test lint unit-mpy test-py bench clean

setup: sysdeps $(STAMP) $(UMQTT) $(INTEROP_STAMP) $(DASH_STAMP)

sysdeps:
	@bash host/scripts/sysdeps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import twintap.proto, serial, mpremote, esptool, paho.mqtt" 
	@test -x $(VENV)/bin/micropython
	@touch $@

$(UMQTT): $(STAMP) host/twintap/deps.py
	@$(PY) -m twintap.deps && touch $@

# The official IoTize JS client (@iotize/tap and its peers) for the interop tests, exactly as
# pinned in the committed lock file; no install scripts run.
$(INTEROP_STAMP): $(INTEROP)/package-lock.json $(INTEROP)/package.json | sysdeps
	@cd $(INTEROP) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# playwright-core for the dashboard's browser tests, from its lock file; it drives Debian's
# chromium (sysdeps), so no install script runs and no browser is downloaded.
$(DASH_STAMP): $(DASH)/package-lock.json $(DASH)/package.json | sysdeps
	@cd $(DASH) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

run: setup
	@$(VENV)/bin/twintap run --dir $(RUN_DIR) --tap-port $(TAP_PORT)

lint: setup
	@$(VENV)/bin/ruff check .
	@echo "lint: ruff clean"

# The unit tests again, under the MicroPython unix port (the same files pytest runs).
unit-mpy: setup
	@for f in tests/unit/test_*.py; do \
		out=$$($(VENV)/bin/micropython $$f 2>&1); rc=$$?; \
		if [ $$rc -ne 0 ]; then echo "$$out"; echo "FAILED under micropython: $$f"; exit 1; fi; \
		echo "$$f: $$(echo "$$out" | tail -n 1)"; \
	done

test-py: setup
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "twintap: pytest collected no tests"; fi; exit $$rc

test: setup lint unit-mpy test-py

# Measure the system (virtual boards, links, broker, platform, baselines) and write the report
# to bench/ (report.md, report.json, PNG plots) and README.md's bench section. About 4 minutes;
# it exits non-zero while a verdict fails (the firmware does not fit --heap 96K yet).
bench: setup
	@$(VENV)/bin/twintap bench --out bench

clean:
	rm -rf $(VENV) .cache .vboard .pytest_cache .ruff_cache
