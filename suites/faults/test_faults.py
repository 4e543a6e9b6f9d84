"""Reliability: one pod degrades or fails, and the stack copes the way the guide promises.

Needs pods that can be degraded on demand (the ``simulator-admin`` feature: simulators
locally and on kind); elsewhere these tests report *not supported*.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.comparison import require_clean_run, run_measured
from fixtures.plugin import Evidence, Figure
from fixtures.stack import FEATURES, Pod, Stack
from fixtures.support import not_supported
from loadtests.api import LoadSpec
from loadtests.locality import balance
from loadtests.workloads import load_workload

pytestmark = [pytest.mark.faults]

SLOWDOWN = 4.0  # the degraded pod's engine steps take this many times longer
MAX_DEGRADED_SHARE_OF_FAIR = 0.6
RECOVERY_PROBES = 40  # distinct prompts sent while a pod fails, and again after it is back


@pytest.fixture
def admin_pods(stack: Stack) -> tuple[Pod, ...]:
    for feature in ("simulator-admin", "pod-identity-header"):
        if not stack.supports(feature):
            not_supported(f"needs the {feature} feature: {FEATURES[feature]}")
    return stack.pods


@pytest.fixture
def degraded_pod(admin_pods: tuple[Pod, ...], http: httpx.Client) -> Iterator[Pod]:
    """The first pod, slowed down for the test and restored afterwards whatever happens."""
    pod = admin_pods[0]
    before = http.get(pod.url + "/admin/config").json()
    response = http.post(pod.url + "/admin/config", json={"speed_factor": SLOWDOWN})
    response.raise_for_status()
    try:
        yield pod
    finally:
        http.post(pod.url + "/admin/config",
                  json={"speed_factor": before.get("speed_factor", 1.0)}).raise_for_status()


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
def test_degraded_pod_receives_less_traffic(degraded_pod: Pod, stack: Stack, run_dir: Path,
                                            evidence: Evidence) -> None:
    """Load-aware scoring (queue, KV usage) steers new requests away from a slow pod."""
    workload = load_workload({"type": "random", "seed": 5, "random": {
        "num_prompts": 160, "input_len": 512, "output_len": 32}}, source="faults")
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=8, users=48,
                    max_requests=160, duration_s=60)
    result, cpu = run_measured(spec, run_dir / "load" / "faults-degraded-pod", stack,
                               timeout_s=120)
    require_clean_run("degraded-pod run", result, cpu)
    shares = balance(result.samples, [p.name for p in stack.pods])
    assert shares, f"no successful request named its pod (log: {result.log_path})"
    total = sum(shares.per_pod.values())
    degraded_share = shares.per_pod[degraded_pod.name] / total
    fair = 1 / len(stack.pods)
    evidence.figure(Figure("degraded_pod_share", degraded_share, "ratio", baseline=fair,
                           threshold=f"<= {MAX_DEGRADED_SHARE_OF_FAIR} x fair share",
                           samples=total, note=f"pod slowed {SLOWDOWN}x; {shares.per_pod}",
                           health=[{"label": "faults-degraded-pod", "cpuCores": cpu}]))
    assert degraded_share <= MAX_DEGRADED_SHARE_OF_FAIR * fair, (
        f"the {SLOWDOWN}x slower pod {degraded_pod.name} still took {degraded_share:.0%} of "
        f"{total} requests (fair share {fair:.0%}): {shares.per_pod}")
