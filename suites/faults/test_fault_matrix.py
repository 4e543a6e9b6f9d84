"""The fault matrix: crashes and restarts during one bounded load run, and what the clients saw.

One stack of this module's own serves a streamed open-loop run while faults are injected one
after another. Each fault's requests (sent from its injection until the next one) are
accounted by ``fixtures.fault_accounting``: succeeded, failed (by status), lost (no answer
within the client deadline: must be 0), time to detect and time to recover. The accounts go
to ``report.yaml`` under ``faults:``.

- local target (3 pods, Envoy with FailClose): faults by signalling its processes — a decode
  pod SIGKILLed mid-stream and restarted, the EPP SIGKILLed and restarted, every pod
  SIGKILLed and restarted, Envoy SIGKILLed and restarted, the EPP restarted gracefully;
- kwok target (the current guide's objects, 3 decode pods, a cluster of its own on another
  loopback network, its EPP on other ports): faults as a cluster has them — a decode pod
  deleted through the API server mid-stream (its ReplicaSet replaces it), a decode container
  crashed (the pod runner restarts it as a kubelet does), the decode Deployment scaled to
  zero and back, the EPP container and the chart's Envoy container crashed.

Elsewhere *not supported*.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.fault_accounting import (
    FaultAccount,
    FaultWindow,
    account,
    classify,
    window_samples,
)
from fixtures.kwok.faults import KwokFaults
from fixtures.localstack import LocalStack, LocalStackConfig
from fixtures.options import HarnessOptions
from fixtures.outcomes import Invalid
from fixtures.plugin import Evidence
from fixtures.processes import tied_to_parent
from fixtures.stack import Stack
from fixtures.support import not_supported
from fixtures.targets.kwok import GUIDE_VERSION, KwokTarget
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
    inject: Callable[[Any], None]  # given the target's driver: LocalStack or KwokFaults
    restore: Callable[[Any], None]
    pod: int | None = None  # index in the stack's pods of the pod the fault hits
    # The pod is gone for good (deleted): recovery is its replacement serving, not the pod.
    replaced: bool = False
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
          lambda s: s.kill("sim-1"), lambda s: s.restart("sim-1"), pod=1,
          schedulers=("ref",), why=NO_KUBELET),
    Fault("pod-unready-then-ready", 4, 9, "sim-1 marked unready through the API server, "
          "then ready", lambda s: s.set_ready("sim-1", False),
          lambda s: s.set_ready("sim-1", True), pod=1, schedulers=("llm-d",),
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
KWOK_MATRIX = (
    Fault("decode-pod-deleted-mid-stream", 0, 10, "decode pod 1 deleted through the API "
          "server with streams in flight (its ReplicaSet replaces it)",
          lambda k: k.delete_pod(1), lambda k: None, pod=1, replaced=True),
    Fault("decode-container-crashed", 0, 8, "SIGKILL to decode pod 2's simulator (the pod "
          "runner restarts it, as a kubelet)", lambda k: k.kill_decode(2), lambda k: None,
          pod=2),
    Fault("every-pod-gone", 3, 12, "the decode Deployment scaled to 0, then back",
          lambda k: k.scale_decode(0), lambda k: k.scale_decode(PODS), fails_fast=True),
    Fault("epp-container-crashed", 0, 10, "SIGKILL to the EPP container (the chart's Envoy "
          "fails open)", lambda k: k.kill_router("epp"), lambda k: None),
    Fault("gateway-container-crashed", 0, 8, "SIGKILL to the chart's envoy-proxy container",
          lambda k: k.kill_router("envoy-proxy"), lambda k: None),
)
KWOK_NETWORK = ipaddress.IPv4Network("127.2.0.0/16")  # beside the session's kwok cluster
KWOK_EPP_PORT_SHIFT = 100  # and its EPP's ports: GAIE's EPP binds every interface
LEAD_IN_S = 4.0  # load before the first fault


@dataclass(frozen=True)
class FaultRun:
    scheduler: str
    windows: dict[str, FaultWindow]
    samples: list[Sample]
    log: Path
    pods: tuple[str, ...] = ()  # the stack's pods when the run started


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def _matrix(harness_options: HarnessOptions) -> tuple[Fault, ...]:
    return KWOK_MATRIX if harness_options.target == "kwok" else MATRIX


@pytest.fixture(scope="module")
def fault_run(harness_options: HarnessOptions, run_dir: Path) -> Iterator[FaultRun]:
    scheduler = harness_options.scheduler
    driver: Any  # what the rows' inject/restore act on
    if harness_options.target == "local":
        rows = [f for f in MATRIX if scheduler in f.schedulers]
        local_stack = LocalStack(LocalStackConfig(log_dir=run_dir / "faults" / "logs",
                                                  pods=PODS, scheduler=scheduler))
        stack, driver, stop = local_stack.start(), local_stack, local_stack.stop
    elif harness_options.target == "kwok":
        rows = list(KWOK_MATRIX)
        target = KwokTarget(replace(harness_options, pods=PODS, guide_version=GUIDE_VERSION),
                            run_dir / "faults", pod_network=KWOK_NETWORK,
                            epp_port_shift=KWOK_EPP_PORT_SHIFT)
        stack = target.up()
        driver, stop = KwokFaults(target, stack), target.down
    else:
        not_supported("the fault matrix crashes the stack's processes and deletes its pods: "
                      "use --target local or kwok")
    try:
        run = _run_faults(stack, driver, rows, run_dir, scheduler)
    finally:
        stop()
    yield run


def _run_faults(stack: Stack, driver: Any, rows: Sequence[Fault], run_dir: Path,
                scheduler: str) -> FaultRun:
    run_seconds = LEAD_IN_S + sum(f.span_s for f in rows)
    workload = load_workload({"type": "random", "seed": 77, "random": {
        "num_prompts": 400, "input_len": 256, "output_len": 48}}, source="fault matrix")
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
            fault.inject(driver)
            _sleep_until(injected + fault.hold_s)
            fault.restore(driver)
            pod = stack.pods[fault.pod].name if fault.pod is not None \
                and not fault.replaced else None
            windows[fault.name] = FaultWindow(fault.name, fault.injected, injected,
                                              time.time(), pod)
        load.wait()
        result = load.result()
    names = [f.name for f in rows]
    for name, following in itertools.pairwise(names):
        w = windows[name]
        windows[name] = FaultWindow(w.name, w.injected, w.injected_at, w.restored_at, w.pod,
                                    observed_until=windows[following].injected_at)
    if not result.samples:
        raise Invalid(f"the load run sent nothing (log {result.log_path})")
    return FaultRun(scheduler, windows, result.samples, result.log_path,
                    tuple(p.name for p in stack.pods))


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


def _replacement_problems(window: FaultWindow, samples: list[Sample],
                          pods: tuple[str, ...]) -> list[str]:
    """A deleted pod's replacement (a pod the run did not start with) must serve before the
    next fault: the pool is whole again."""
    after = [s for s in window_samples(window, samples)
             if window.restored_at is not None and s.start >= window.restored_at]
    new = {s.pod for s in after if classify(s) == "succeeded" and s.pod and s.pod not in pods}
    return [] if new else [f"no replacement pod served after the deletion (served: "
                           f"{sorted({str(s.pod) for s in after if s.pod})})"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The matrix's rows for the target the session runs on."""
    if "fault" in metafunc.fixturenames:
        rows = _matrix(HarnessOptions.from_config(metafunc.config))
        metafunc.parametrize("fault", rows, ids=[f.name for f in rows])


def test_a_fault_loses_no_request_and_the_stack_recovers(
        fault: Fault, fault_run: FaultRun, evidence: Evidence) -> None:
    if fault.name not in fault_run.windows:
        not_supported(f"{fault.name} with --scheduler {fault_run.scheduler}: {fault.why}")
    window = fault_run.windows[fault.name]
    found = account(window, fault_run.samples)
    evidence.fault(found)
    problems = _problems(fault, found, _failures(window, fault_run.samples))
    if fault.replaced:
        problems += _replacement_problems(window, fault_run.samples, fault_run.pods)
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
                  lambda s: None, pod=0)
    window = FaultWindow(fault.name, fault.injected, injected, None, pod.name)
    found = account(window, result.samples)
    problems = _problems(fault, found, _failures(window, result.samples))
    assert any("got no answer" in p for p in problems), (found, problems)
