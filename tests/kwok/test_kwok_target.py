"""``--target kwok``: the stack runs on a real control plane; the EPP finds the decode pods
through the API server, and deleting one stops its simulator while traffic goes on."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from fixtures.options import HarnessOptions
from fixtures.report import RunReport
from fixtures.stack import Stack
from fixtures.targets import make_target
from fixtures.targets.kwok import KwokTarget
from fixtures.tools import TOOLS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

POD_NETWORK = ipaddress.IPv4Network("127.1.0.0/16")


@pytest.fixture(scope="module")
def kwok_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokTarget]:
    options = HarnessOptions(target="kwok", pods=2, namespace="kwok-target")
    target = make_target(options, tmp_path_factory.mktemp("run"))
    assert isinstance(target, KwokTarget)
    try:
        yield target
    finally:
        target.down()


@pytest.fixture(scope="module")
def kwok_stack(kwok_target: KwokTarget) -> Stack:
    return kwok_target.up()


def _served_by(stack: Stack, count: int, tag: str) -> list[str]:
    names = []
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as http:
        for i in range(count):
            reply = http.post("/v1/completions", json={
                "model": stack.model, "prompt": f"{tag} {i} " * 10, "max_tokens": 2})
            assert reply.status_code == 200, reply.text
            names.append(reply.headers["x-inference-pod"])
    return names


def test_the_stack_names_the_api_server_and_pods_on_loopback(kwok_stack: Stack) -> None:
    assert kwok_stack.target == "kwok"
    assert kwok_stack.extras["api_server_version"] == TOOLS["kube"].version
    assert Path(kwok_stack.extras["kubeconfig"]).is_file()
    assert kwok_stack.extras["control_plane_ready_seconds"] <= 30.0
    assert len(kwok_stack.pods) == 2
    for pod in kwok_stack.pods:
        assert ipaddress.IPv4Address(pod.address.rsplit(":", 1)[0]) in POD_NETWORK
    report = RunReport(run_dir=Path("."), target="kwok", gateway="local")
    summary = report.to_dict([kwok_stack.to_dict()])["stacks"][0]
    assert summary["apiServerVersion"] == TOOLS["kube"].version


def test_requests_through_the_gateway_reach_the_decode_pods(kwok_stack: Stack) -> None:
    served = set(_served_by(kwok_stack, 12, "spread"))
    assert served <= {p.name for p in kwok_stack.pods}
    assert served == {p.name for p in kwok_stack.pods}  # distinct prompts spread over both


def test_a_deleted_decode_pod_stops_and_is_no_longer_picked(kwok_target: KwokTarget,
                                                           kwok_stack: Stack) -> None:
    victim, survivor = kwok_stack.pods
    assert kwok_target.cluster is not None and kwok_target.runner is not None
    process = kwok_target.runner.process_of("kwok-target", victim.name)
    assert process is not None and process.alive
    with kwok_target.cluster.api_client() as api_client:
        client.CoreV1Api(api_client).delete_namespaced_pod(victim.name, "kwok-target")
    deadline = time.monotonic() + 30
    while process.alive and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process.alive
    time.sleep(1.0)  # the EPP's pod watch delivers the deletion
    served = _served_by(kwok_stack, 12, "after")
    assert victim.name not in served
    assert survivor.name in served  # traffic continues (the replacement pod may join too)


def test_collected_diagnostics_hold_pods_events_and_logs(kwok_target: KwokTarget,
                                                         kwok_stack: Stack,
                                                         tmp_path: Path) -> None:
    kwok_target.collect_diagnostics(tmp_path)
    assert "decode-" in (tmp_path / "pods.yaml").read_text()
    assert (tmp_path / "events.yaml").exists()
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert {"kube-apiserver.log", "kwok.log", "envoy.log"} <= logs


def test_the_upstream_epp_finds_the_decode_pods_through_the_api_server(
        tmp_path: Path) -> None:
    target = KwokTarget(HarnessOptions(target="kwok", scheduler="llm-d", pods=2,
                                       namespace="kwok-llm-d"), tmp_path)
    try:
        stack = target.up()
        assert stack.scheduler == "llm-d"
        assert stack.extras["epp_version"] == TOOLS["epp"].version
        assert stack.extras["api_server_version"] == TOOLS["kube"].version
        assert set(_served_by(stack, 12, "upstream")) == {p.name for p in stack.pods}
    finally:
        target.down()


def test_the_traffic_suites_run_on_kwok_though_the_deploy_suite_cannot(tmp_path: Path) -> None:
    """The deploy suite's reason (no guide charts installed) must not turn every traffic suite
    into *not supported*: the stack fixture asks only for a reason no stack can stand."""
    from fixtures.plugin import stack_unsupported_reason

    target = make_target(HarnessOptions(target="kwok", pods=2), tmp_path)
    assert isinstance(target, KwokTarget)
    assert target.unsupported_reason()  # the deploy suite: no guide objects to verify
    assert stack_unsupported_reason(target) is None
