"""Reliability: one pod degrades or fails, and the stack copes the way the guide promises.

Needs pods that can be degraded on demand (the ``simulator-admin`` feature: simulators
locally and on kind); elsewhere these tests report *not supported*.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.plugin import Evidence, Figure
from fixtures.stack import FEATURES, Pod, Stack
from fixtures.support import not_supported
from loadtests.api import LoadSpec, run_load
from loadtests.locality import balance
from loadtests.workloads import load_workload

pytestmark = [pytest.mark.faults]

SLOWDOWN = 4.0  # the degraded pod's engine steps take this many times longer
MAX_DEGRADED_SHARE_OF_FAIR = 0.6


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
    recovered = gateway.post("/v1/completions", json=body)
    assert recovered.status_code == 200, (
        f"the stack did not recover after one pod error: {recovered.status_code} "
        f"{recovered.text}")


@pytest.mark.load
def test_degraded_pod_receives_less_traffic(degraded_pod: Pod, stack: Stack, run_dir: Path,
                                            evidence: Evidence) -> None:
    """Load-aware scoring (queue, KV usage) steers new requests away from a slow pod."""
    workload = load_workload({"type": "random", "seed": 5, "random": {
        "num_prompts": 160, "input_len": 512, "output_len": 32}}, source="faults")
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=8, users=48,
                    max_requests=160, duration_s=60)
    result = run_load(spec, run_dir / "load" / "faults-degraded-pod", timeout_s=120)
    shares = balance(result.samples, [p.name for p in stack.pods])
    assert shares, f"no successful request named its pod (log: {result.log_path})"
    total = sum(shares.per_pod.values())
    degraded_share = shares.per_pod[degraded_pod.name] / total
    fair = 1 / len(stack.pods)
    evidence.figure(Figure("degraded_pod_share", degraded_share, "ratio", baseline=fair,
                           threshold=f"<= {MAX_DEGRADED_SHARE_OF_FAIR} x fair share",
                           samples=total, note=f"pod slowed {SLOWDOWN}x; {shares.per_pod}"))
    assert degraded_share <= MAX_DEGRADED_SHARE_OF_FAIR * fair, (
        f"the {SLOWDOWN}x slower pod {degraded_pod.name} still took {degraded_share:.0%} of "
        f"{total} requests (fair share {fair:.0%}): {shares.per_pod}")
