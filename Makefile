# lamplighter — the two commands a user needs: `make conformance` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: nightly help install bench-venv conformance test lint typecheck unit suites clean epp tools

help:
	@echo "make conformance  stand up the embedded local stack and run the verification suites"
	@echo "make test         lint, type-check, the harness's own tests and the local suites"
	@echo "make epp | tools  build the pinned upstream EPP | every Go tool (cached in ~/.cache/lamplighter/tools)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# inference-perf (Python >= 3.12) in its own venv: the peer the load generator is compared with
bench-venv: install
	$(PY) -c "from pathlib import Path; from loadtests.peers import link_cached_venv; link_cached_venv(Path('.venv-bench'))"

# The long runs (soak, fault matrix, fidelity) are left to make test and nightly runs.
conformance: install
	$(PY) -m pytest suites --target local -m "not long" -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

TYPECHECK = $(VENV)/bin/mypy simulator scheduler_ref fixtures loadtests suites tests benchmarks \
	conftest.py
typecheck: install
	$(TYPECHECK)

unit: install
	$(UNIT) $(PYTEST_ARGS)

suites: conformance

# The harness's own tests run on every core, one test file per worker (each worker's kwok
# clusters on a pod network and EPP ports of its own, tests/support/kwok_networks.py). The
# suites measure latency, so they run alone, one test at a time: scheduler_ref on the local
# stack, then every suite on a real control plane (kwok) with the upstream EPP (GAIE v1.5.0)
# in the chart's pod, finding the decode pods through the API server.
UNIT_WORKERS ?= auto
UNIT = $(PY) -m pytest tests -n $(UNIT_WORKERS) --dist loadfile
# Beside the harness's own tests (they leave a third of the cores idle): mypy, and the soak,
# which checks memory and descriptors, not latency. Their output follows the tests'; an
# interrupted make test stops them (background jobs of a script ignore SIGINT; SIGTERM ends
# the soak's pytest, whose stack processes die with it, PR_SET_PDEATHSIG).
SOAK = suites/faults/test_soak.py
test: lint install
	@mkdir -p reports
	trap 'kill $$typecheck $$soak 2>/dev/null' EXIT; \
	trap 'kill $$typecheck $$soak 2>/dev/null; exit 130' INT TERM; \
	$(TYPECHECK) > reports/typecheck.log 2>&1 & typecheck=$$!; \
	$(PY) -m pytest $(SOAK) --target local -p no:cacheprovider $(PYTEST_ARGS) \
		> reports/soak.log 2>&1 & soak=$$!; \
	$(UNIT) -p no:cacheprovider $(PYTEST_ARGS); unit=$$?; \
	wait $$typecheck; typed=$$?; wait $$soak; soaked=$$?; \
	echo "# mypy (exit $$typed)"; cat reports/typecheck.log; \
	echo "# $(SOAK) --target local (exit $$soaked)"; cat reports/soak.log; \
	[ $$unit -eq 0 ] && [ $$typed -eq 0 ] && [ $$soaked -eq 0 ]
	$(PY) -m pytest suites --target local --ignore $(SOAK) -p no:cacheprovider $(PYTEST_ARGS)
	$(PY) -m pytest suites --target kwok --scheduler llm-d --sweep off \
		-p no:cacheprovider $(PYTEST_ARGS)
	# The rate sweep (reported, not asserted; ~35 s a line) runs in the local line above;
	# scheduler_ref on kwok, the upstream EPP on the local stack and their sweeps run in
	# make nightly.

# The nightly depth (issue 12): 10,000 generated cases per fuzz target and a 10-minute soak,
# where make test runs 1,000 and 60 s; the scheduler/target pairs and rate sweeps make test
# leaves out. Needs the Go tools (make tools) like make test.
FUZZ_TESTS = tests/harness/test_gateway_fuzz.py tests/simulator/test_sim_fuzz_hypothesis.py \
	tests/controlplane/test_upstream_epp.py tests/scheduler_ref/test_sched_fuzz.py
nightly: install
	LAMPLIGHTER_FUZZ_CASES=10000 $(PY) -m pytest $(FUZZ_TESTS) --timeout 3600 \
		-p no:cacheprovider $(PYTEST_ARGS)
	LAMPLIGHTER_SOAK_SECONDS=600 $(PY) -m pytest suites/faults/test_soak.py --target local \
		--timeout 1800 -p no:cacheprovider $(PYTEST_ARGS)
	$(PY) -m pytest suites --target kwok -p no:cacheprovider $(PYTEST_ARGS)
	$(PY) -m pytest suites/inference suites/routing suites/faults/test_fault_matrix.py \
		--target local --scheduler llm-d -p no:cacheprovider $(PYTEST_ARGS)
	$(PY) -m pytest suites/routing/test_sweep.py --target kwok --scheduler llm-d \
		-p no:cacheprovider $(PYTEST_ARGS)

# Pinned tools built from Go modules into ~/.cache/lamplighter/tools (a rebuild is a cache hit).
# Another EPP: make epp EPP_MODULE=github.com/llm-d/llm-d-router EPP_VERSION=v0.9.0
EPP_MODULE ?= sigs.k8s.io/gateway-api-inference-extension
EPP_VERSION ?= v1.5.0
TOOLS_CLI = $(PY) -m fixtures.tools --epp-module $(EPP_MODULE) --epp-version $(EPP_VERSION)

epp: install
	$(TOOLS_CLI) build epp

tools: install
	$(TOOLS_CLI) build all

clean:
	rm -rf $(VENV) .venv-bench reports .lamplighter .pytest_cache .mypy_cache .ruff_cache
