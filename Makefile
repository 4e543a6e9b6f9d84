# lamplighter — the two commands a user needs: `make conformance` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help install bench-venv epp conformance test lint typecheck unit suites clean

help:
	@echo "make conformance  stand up the embedded local stack and run the verification suites"
	@echo "make test         lint, type-check, the harness's own tests and the local suites"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# inference-perf (Python >= 3.12) in its own venv: the peer the load generator is compared with
bench-venv: install
	$(PY) -c "from pathlib import Path; from loadtests.peers import ensure_venv; ensure_venv(Path('.venv-bench'))"

# The upstream endpoint picker (GAIE's EPP), pinned in fixtures/tools/gomod/epp, built with
# the Go toolchain and cached under ~/.cache/lamplighter/tools (a second build is instant).
epp: install
	$(PY) -m fixtures.tools build epp

conformance: install
	$(PY) -m pytest suites --target local -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy simulator scheduler_ref fixtures loadtests suites tests benchmarks conftest.py

unit: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

suites: conformance

test: lint typecheck
	$(PY) -m pytest tests suites --target local -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-bench reports .lamplighter .pytest_cache .mypy_cache .ruff_cache
