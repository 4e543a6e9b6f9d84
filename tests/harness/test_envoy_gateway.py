"""Real Envoy in front of the local stack: what it reports, where it routes, how it fails."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.localstack import LocalStack, LocalStackConfig
from fixtures.stack import Stack

pytestmark = pytest.mark.timeout(120)

BODY = {"prompt": "The quick brown fox jumps", "max_tokens": 4}


def _post(url: str, stack: Stack, **extra: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"model": stack.model, **BODY, **extra},
                      timeout=30)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(LocalStackConfig(log_dir=tmp_path_factory.mktemp("envoy"), pods=2))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_the_admin_reports_envoy_and_its_version(local: LocalStack) -> None:
    assert local.stack is not None
    info = httpx.get(f"{local.stack.extras['gateway_admin_url']}/server_info", timeout=5).json()
    assert info["version"].split("/")[1] == local.stack.extras["gateway_version"]
    assert local.stack.extras["gateway_implementation"] == "envoy"


def test_the_gateway_streams_events_as_they_come(local: LocalStack) -> None:
    stack = local.stack
    assert stack is not None
    body = {"model": stack.model, **BODY, "max_tokens": 8, "stream": True}
    with httpx.stream("POST", f"{stack.gateway_url}/v1/completions", json=body,
                      timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["x-inference-pod"] in {p.name for p in stack.pods}
        reads = [chunk for chunk in response.iter_raw() if chunk]
    assert len(reads) >= 3, f"the stream arrived in {len(reads)} piece(s): buffered?"


def test_the_baseline_spreads_requests_over_every_pod(local: LocalStack) -> None:
    stack = local.stack
    assert stack is not None
    # Round robin per Envoy worker thread (2 workers): not a strict alternation overall.
    served = Counter(_post(stack.baseline_url, stack).headers["x-inference-pod"]
                     for _ in range(12))
    assert set(served) == {p.name for p in stack.pods} and min(served.values()) >= 3, served


def test_the_same_prompt_through_the_epp_stays_on_one_pod(local: LocalStack) -> None:
    stack = local.stack
    assert stack is not None
    long_prompt = "shared system prompt " * 200
    served = {_post(stack.gateway_url, stack, prompt=long_prompt).headers["x-inference-pod"]
              for _ in range(6)}
    assert len(served) == 1, f"one prefix went to {served}"


def test_a_gateway_delay_slows_the_gateway_and_not_the_baseline(tmp_path: Path) -> None:
    with LocalStack(LocalStackConfig(log_dir=tmp_path, pods=1,
                                     gateway_delay_ms=300)) as stack:
        started = time.monotonic()
        assert _post(stack.gateway_url, stack).status_code == 200
        through_gateway = time.monotonic() - started
        started = time.monotonic()
        assert _post(stack.baseline_url, stack).status_code == 200
        through_baseline = time.monotonic() - started
    assert through_gateway >= 0.3 > through_baseline, (through_gateway, through_baseline)


def test_fail_open_serves_nothing_without_a_destination_and_says_so(tmp_path: Path) -> None:
    """With the EPP gone, FailOpen lets the request past ext_proc, but the ORIGINAL_DST
    route has no destination header to follow: Envoy answers a 5xx at once (500 or 503 seen,
    depending on whether its health check already marked the EPP down). This is how the
    no-Kubernetes layout behaves; a gateway with a pool fallback would serve it."""
    local = LocalStack(LocalStackConfig(log_dir=tmp_path, pods=1, failure_mode="FailOpen"))
    stack = local.start()
    try:
        local.supervisor.get("scheduler_ref").stop()
        started = time.monotonic()
        answer = _post(stack.gateway_url, stack)
        elapsed = time.monotonic() - started
    finally:
        local.stop()
    assert answer.status_code in (500, 503) and elapsed < 5, (answer.status_code, elapsed)


def test_envoy_talks_tls_to_the_epp_by_default(local: LocalStack) -> None:
    stack = local.stack
    assert stack is not None and stack.extras["epp_tls"] is True
    bootstrap = (local.config.log_dir / "envoy.yaml").read_text()
    assert "envoy.transport_sockets.tls" in bootstrap
    assert "--secure-serving=true" in (local.config.log_dir / "scheduler_ref.log").read_text()
    assert _post(stack.gateway_url, stack).status_code == 200


def test_plaintext_to_the_epp_routes_like_tls(tmp_path: Path) -> None:
    with LocalStack(LocalStackConfig(log_dir=tmp_path, pods=1, epp_tls=False)) as stack:
        answer = _post(stack.gateway_url, stack)
    assert answer.status_code == 200, answer.text
    assert "--secure-serving=false" in (tmp_path / "scheduler_ref.log").read_text()
    assert "transport_socket" not in (tmp_path / "envoy.yaml").read_text()


@pytest.mark.slow
def test_the_upstream_epp_routes_behind_envoy_and_keeps_a_prefix_on_one_pod(
        tmp_path: Path) -> None:
    """``--scheduler llm-d``: GAIE's EPP (built from Go modules) finds the pods through a real
    kube-apiserver; Envoy routes where it says."""
    local = LocalStack(LocalStackConfig(log_dir=tmp_path, pods=2, scheduler="llm-d"))
    stack = local.start()
    try:
        assert stack.extras["epp_implementation"] == "gateway-api-inference-extension/cmd/epp"
        metrics = httpx.get(stack.epp_metrics_url or "", timeout=5).text
        assert f'build_ref="{stack.extras["epp_version"]}"' in metrics
        assert {p.address.rsplit(":", 1)[0] for p in stack.pods} == {"127.0.1.1", "127.0.1.2"}
        long_prompt = "shared system prompt " * 200
        served = Counter(_post(stack.gateway_url, stack, prompt=long_prompt)
                         .headers["x-inference-pod"] for _ in range(6))
        spread = Counter(_post(stack.baseline_url, stack).headers["x-inference-pod"]
                         for _ in range(6))
    finally:
        local.stop()
    assert len(served) == 1, f"one prefix went to {served}"
    assert len(spread) == 2, f"the baseline did not reach both pods: {spread}"
