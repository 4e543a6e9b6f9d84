"""Generated bad input through the gateway: Envoy, the EPP's ext_proc and a simulator behind.

The same generated requests as the simulator's fuzz (``tests.support.http_inputs``) go
through real Envoy to scheduler_ref (and, when built, to the upstream EPP): every one must get
a deliberate answer below 500 — a 4xx with a message from whichever part refused it (the EPP's
ImmediateResponse, Envoy, or the pod's OpenAI error) — within its deadline, and afterwards
every process of the stack is alive and an ordinary request is served. A 5xx, a hang, or a
dead process fails. ``LAMPLIGHTER_FUZZ_CASES`` sets the count (default 1,000).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from fixtures.localstack import LocalStack, LocalStackConfig, SimulatorParams
from fixtures.plugin import Evidence
from fixtures.tools import is_cached
from tests.support.fuzz_totals import record_fuzz_totals
from tests.support.http_inputs import fuzz_http

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CASES = int(os.environ.get("LAMPLIGHTER_FUZZ_CASES", "1000"))
DEADLINE_S = 15.0


def check_through_gateway(response: httpx.Response) -> None:
    """Below 500, and a refusal says why (Envoy's own 4xx are plain text, the EPP's and the
    pod's are OpenAI errors: each needs a non-empty body)."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert response.content.strip(), f"{response.status_code} with an empty body"


def test_a_5xx_or_an_empty_refusal_fails_the_gateway_check() -> None:
    """Negative control for the per-request check."""
    for bad in (httpx.Response(503, text="no healthy upstream"), httpx.Response(400)):
        with pytest.raises(AssertionError):
            check_through_gateway(bad)
    check_through_gateway(httpx.Response(400, text="Bad Request"))


@pytest.mark.parametrize("scheduler", ["ref", "llm-d"])
def test_generated_requests_through_the_gateway_get_an_answer_never_a_5xx_or_a_hang(
        scheduler: str, tmp_path: Path, evidence: Evidence) -> None:
    if scheduler == "llm-d" and not all(is_cached(b) for b in ("epp", "etcd", "kube-apiserver")):
        pytest.skip("the upstream EPP is not built (`make epp`; .ci/run builds it)")
    # Admin off, as in a deployment: a fuzzed x-sim-force-error must not be obeyed.
    local = LocalStack(LocalStackConfig(log_dir=tmp_path / "logs", pods=2, scheduler=scheduler,
                                        gateway_log_requests=False,
                                        simulator=SimulatorParams(admin=False)))
    stack = local.start()
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=DEADLINE_S) as http:
            seen = fuzz_http(http, stack.model, CASES, check_through_gateway)
            dead = [p.name for p in local.processes() if not p.alive]
            assert not dead, f"died under fuzzing: {dead}"
            served = http.post("/v1/completions", json={
                "model": stack.model, "prompt": "still there?", "max_tokens": 2})
            assert served.status_code == 200, served.text
    finally:
        local.stop()
    record_fuzz_totals(evidence, f"gateway_{scheduler.replace('-', '_')}", dict(seen))
    assert sum(seen.values()) >= CASES
    assert seen.get(200, 0) > CASES // 100, seen  # the generator reaches served requests too
