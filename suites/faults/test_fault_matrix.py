"""The fault matrix: crashes and restarts during one bounded load run, and what the clients saw.

One stack of this module's own (3 pods, scheduler_ref, Envoy with FailClose) serves a streamed
open-loop run while faults are injected one after another by signalling its processes: a decode
pod SIGKILLed mid-stream and restarted, the EPP SIGKILLed and restarted, every pod SIGKILLed and
restarted, Envoy SIGKILLed and restarted, the EPP restarted gracefully. Each fault's requests
(sent from its injection until the next one) are accounted by ``fixtures.fault_accounting``:
succeeded, failed (by status), lost (no answer within the client deadline: must be 0), time to
detect and time to recover. The accounts go to ``report.yaml`` under ``faults:``.

Needs to crash and restart the stack's processes: the local target; elsewhere *not supported*.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fixtures.fault_accounting import (
    FaultAccount,
    FaultWindow,
    account,
    classify,
    window_samples,
)
from fixtures.localstack import LocalStack, LocalStackConfig
from fixtures.options import HarnessOptions
from fixtures.outcomes import Invalid
from fixtures.plugin import Evidence
from fixtures.processes import tied_to_parent
from fixtures.support import not_supported
from loadtests.api import LoadProcess, LoadSpec
from loadtests.samples import Sample
from loadtests.workloads import load_workload

pytestmark = [pytest.mark.faults, pytest.mark.load, pytest.mark.slow, pytest.mark.long]

PODS = 3
RATE = 6.0
REQUEST_DEADLINE_S = 20.0  # a request unanswered by then is lost
FAST_FAILURE_S = 2.0  # FailClose and no-pods must answer an error at once, not hang
DETECT_BOUND_S = 6.0  # scheduler_ref's metrics staleness (2 s) + scrape period + slack


@dataclass(frozen=True)
class Fault:
    """One row of the matrix: when, what is done, how it is undone, whom it targets."""

    name: str
    hold_s: float  # seconds until it is undone
    span_s: float  # seconds from injection until the next fault (its observation window)
    injected: str
    inject: Callable[[LocalStack], None]
    restore: Callable[[LocalStack], None]
    pod: str | None = None
    fails_fast: bool = False  # errors it causes must come back within FAST_FAILURE_S
    # The schedulers whose local stack can take this fault; with another it is *not
    # supported*, for ``why``.
    schedulers: tuple[str, ...] = ("ref", "llm-d")
    why: str = ""


def _pods() -> list[str]:
    return [f"sim-{i}" for i in range(PODS)]


def _each(action: str) -> Callable[[LocalStack], None]:
    def run(local: LocalStack) -> None:
        for name in _pods():
            getattr(local, action)(name)
    return run


def _graceful_restart(local: LocalStack) -> None:
    local.restart("scheduler_ref")  # SIGTERM, then the same command line again


NO_KUBELET = ("locally no kubelet marks a dead pod unready for the upstream EPP (GAIE "
              "v1.5.0 keeps picking it); the kwok target runs this row")
REF_ONLY = "the upstream EPP runs beside its own API server and is not restarted in place"
NO_READINESS = "scheduler_ref's --endpoints has no pod readiness; runs with --scheduler llm-d"
MATRIX = (
    Fault("decode-pod-killed-mid-stream", 5, 10, "SIGKILL to sim-1 with streams in flight",
          lambda s: s.kill("sim-1"), lambda s: s.restart("sim-1"), pod="sim-1",
          schedulers=("ref",), why=NO_KUBELET),
    Fault("pod-unready-then-ready", 4, 9, "sim-1 marked unready through the API server, "
          "then ready", lambda s: s.set_ready("sim-1", False),
          lambda s: s.set_ready("sim-1", True), pod="sim-1", schedulers=("llm-d",),
          why=NO_READINESS),
    Fault("epp-killed-failclose", 3, 10, "SIGKILL to scheduler_ref (Envoy FailClose)",
          lambda s: s.kill("scheduler_ref"), lambda s: s.restart("scheduler_ref"),
          fails_fast=True, schedulers=("ref",), why=REF_ONLY),
    Fault("every-pod-gone", 3, 10, "SIGKILL to every decode pod", _each("kill"),
          _each("restart"), fails_fast=True),
    Fault("gateway-restarted", 1, 8, "SIGKILL to Envoy, then started again",
          lambda s: s.kill("envoy"), lambda s: s.restart("envoy")),
    Fault("epp-restarted", 0, 10, "scheduler_ref stopped (SIGTERM) and started again",
          _graceful_restart, lambda s: None, schedulers=("ref",), why=REF_ONLY),
)
LEAD_IN_S = 4.0  # load before the first fault


@dataclass(frozen=True)
class FaultRun:
    scheduler: str
    windows: dict[str, FaultWindow]
    samples: list[Sample]
    log: Path


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


@pytest.fixture(scope="module")
def fault_run(harness_options: HarnessOptions, run_dir: Path) -> Iterator[FaultRun]:
    if harness_options.target != "local":
        not_supported("the fault matrix crashes and restarts the stack's processes: "
                      "use --target local")
    scheduler = harness_options.scheduler
    rows = [f for f in MATRIX if scheduler in f.schedulers]
    run_seconds = LEAD_IN_S + sum(f.span_s for f in rows)
    config = LocalStackConfig(log_dir=run_dir / "faults" / "logs", pods=PODS,
                              scheduler=scheduler)
    workload = load_workload({"type": "random", "seed": 77, "random": {
        "num_prompts": 400, "input_len": 256, "output_len": 48}}, source="fault matrix")
    local_stack = LocalStack(config)
    stack = local_stack.start()
    try:
        spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                        api="completions", stream=True, arrival="poisson", rate=RATE,
                        users=64, max_requests=int(RATE * run_seconds),
                        duration_s=run_seconds, request_timeout_s=REQUEST_DEADLINE_S)
        out = run_dir / "load" / "fault-matrix"
        windows: dict[str, FaultWindow] = {}
        with LoadProcess(spec, out, launcher=tied_to_parent) as load:
            at = time.time() + LEAD_IN_S
            for fault in rows:
                _sleep_until(at)
                at += fault.span_s
                injected = time.time()
                fault.inject(local_stack)
                _sleep_until(injected + fault.hold_s)
                fault.restore(local_stack)
                windows[fault.name] = FaultWindow(fault.name, fault.injected, injected,
                                                  time.time(), fault.pod)
            load.wait()
            result = load.result()
    finally:
        local_stack.stop()
    names = [f.name for f in rows]
    for name, following in itertools.pairwise(names):
        w = windows[name]
        windows[name] = FaultWindow(w.name, w.injected, w.injected_at, w.restored_at, w.pod,
                                    observed_until=windows[following].injected_at)
    if not result.samples:
        raise Invalid(f"the load run sent nothing (log {result.log_path})")
    yield FaultRun(scheduler, windows, result.samples, result.log_path)


def _failures(window: FaultWindow, samples: list[Sample]) -> list[Sample]:
    return [s for s in window_samples(window, samples) if classify(s) != "succeeded"]


def _problems(fault: Fault, found: FaultAccount, failures: list[Sample]) -> list[str]:
    """What is wrong with how the stack took ``fault`` (empty: nothing)."""
    problems = []
    lost = [s for s in failures if classify(s) == "lost"]
    if lost:
        problems.append(f"{len(lost)} of {found.sent} requests got no answer within "
                        f"{REQUEST_DEADLINE_S:g} s, e.g. {lost[0]}")
    if found.sent == 0:
        problems.append("no request was sent while the fault was on")
    if found.time_to_recover_s is None:
        problems.append(f"not recovered before the next fault: {found.notes}")
    if fault.pod is not None and (found.time_to_detect_s or 0.0) > DETECT_BOUND_S:
        problems.append(f"requests kept failing {found.time_to_detect_s:.1f} s after the pod "
                        f"died (bound {DETECT_BOUND_S:g} s): {found.failed_by_status}")
    if fault.fails_fast:
        slow = [s for s in failures if (s.e2e_s or 0.0) > FAST_FAILURE_S]
        if slow:
            problems.append(f"{len(slow)} failures took more than {FAST_FAILURE_S:g} s to "
                            f"come back, e.g. {slow[0]}")
    return problems


@pytest.mark.parametrize("fault", MATRIX, ids=[f.name for f in MATRIX])
def test_a_fault_loses_no_request_and_the_stack_recovers(
        fault: Fault, fault_run: FaultRun, evidence: Evidence) -> None:
    if fault.name not in fault_run.windows:
        not_supported(f"{fault.name} with --scheduler {fault_run.scheduler}: {fault.why}")
    window = fault_run.windows[fault.name]
    found = account(window, fault_run.samples)
    evidence.fault(found)
    problems = _problems(fault, found, _failures(window, fault_run.samples))
    assert not problems, f"{fault.name} (log {fault_run.log}):\n" + "\n".join(problems)


def test_a_hung_pod_is_caught_as_lost_requests(harness_options: HarnessOptions,
                                               run_dir: Path) -> None:
    """Negative control: a pod that never answers (simulator admin hang) must make the
    verdict above fail with lost requests, or lost = 0 would prove nothing."""
    if harness_options.target != "local":
        not_supported("needs a local stack of its own: use --target local")
    local = LocalStack(LocalStackConfig(log_dir=run_dir / "faults-control" / "logs", pods=1))
    stack = local.start()
    try:
        pod = stack.pods[0]
        workload = load_workload({"type": "random", "seed": 78, "random": {
            "num_prompts": 40, "input_len": 64, "output_len": 8}}, source="hung-pod control")
        spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                        api="completions", stream=True, arrival="poisson", rate=4.0, users=16,
                        max_requests=24, duration_s=6, request_timeout_s=3)
        with LoadProcess(spec, run_dir / "load" / "faults-control",
                         launcher=tied_to_parent) as load:
            time.sleep(1.0)
            injected = time.time()
            httpx.post(f"{pod.url}/admin/hang", json={"enabled": True}, timeout=5)
            load.wait()
            result = load.result()
        httpx.post(f"{pod.url}/admin/hang", json={"enabled": False}, timeout=5)
    finally:
        local.stop()
    fault = Fault("hung-pod", 1, 0, "admin hang on the only pod", lambda s: None,
                  lambda s: None, pod=pod.name)
    window = FaultWindow(fault.name, fault.injected, injected, None, pod.name)
    found = account(window, result.samples)
    problems = _problems(fault, found, _failures(window, result.samples))
    assert any("got no answer" in p for p in problems), (found, problems)
