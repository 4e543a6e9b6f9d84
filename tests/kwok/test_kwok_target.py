"""``--target kwok``: the current guide's own objects run on a real control plane; the chart's
Envoy and EPP containers run for real, the EPP finds the decode pods through the API server as
the chart's service account, and deleting a pod stops its simulator while traffic goes on."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from fixtures.kwok.objects import plain
from fixtures.options import HarnessOptions
from fixtures.report import RunReport
from fixtures.stack import Stack
from fixtures.targets import make_target
from fixtures.targets.kwok import KwokTarget
from fixtures.tools import TOOLS
from tests.support.kwok_networks import worker_pod_network
from tests.support.served_by import served_by

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

POD_NETWORK = worker_pod_network()
NAMESPACE = "llm-d-optimized-baseline"  # the namespace the guide's objects were rendered for


@pytest.fixture(scope="module")
def kwok_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokTarget]:
    options = HarnessOptions(target="kwok", guide_version="current", pods=2)
    target = KwokTarget(options, tmp_path_factory.mktemp("run"), pod_network=POD_NETWORK)
    try:
        yield target
    finally:
        target.down()


@pytest.fixture(scope="module")
def kwok_stack(kwok_target: KwokTarget) -> Stack:
    return kwok_target.up()


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
    install = kwok_stack.extras["guide_install"]
    assert "Deployment/optimized-baseline-epp" in install["objects"]
    assert install["deviations"] == ["Deployment optimized-baseline-nvidia-gpu-vllm-decode: "
                                     "spec.replicas 8 -> 2 (--pods: simulators this machine "
                                     "runs)"]


def test_the_gateway_is_the_charts_envoy_beside_the_epp(kwok_target: KwokTarget,
                                                        kwok_stack: Stack) -> None:
    """The client entry is the EPP Service's http port (80 -> 8081) on the EPP pod, where the
    chart's own envoy-proxy container listens; its ext_proc goes to the epp container."""
    epp_ip = kwok_stack.extras["epp_address"].rsplit(":", 1)[0]
    assert kwok_stack.gateway_url == f"http://{epp_ip}:8081"
    notes = next(iter(kwok_stack.extras["pod_runner_notes"].values()))
    assert any("envoy-proxy" in n and f"{epp_ip}:9002" in n for n in notes)
    assert any("scheduler_ref stands in" in n for n in notes)
    assert kwok_target.runner is not None
    envoy = kwok_target.runner.process_of(NAMESPACE, kwok_stack.extras["epp_pod"],
                                          "envoy-proxy")
    assert envoy is not None and envoy.alive


def test_the_epp_reads_the_api_server_as_the_charts_service_account(
        kwok_target: KwokTarget, kwok_stack: Stack) -> None:
    """The chart's Roles decide: its account may watch pods, and (negative control) may not
    read Secrets, which no rule grants."""
    path = kwok_target.workdir / "credentials" / f"{NAMESPACE}-{kwok_stack.extras['epp_pod']}" \
        ".kubeconfig"
    with config.new_client_from_config(config_file=str(path)) as api_client:
        core = client.CoreV1Api(api_client)
        assert len(core.list_namespaced_pod(NAMESPACE).items) >= 3
        with pytest.raises(ApiException) as denied:
            core.list_namespaced_secret(NAMESPACE)
    assert denied.value.status == 403


def test_requests_through_the_gateway_reach_the_decode_pods(kwok_stack: Stack) -> None:
    served = set(served_by(kwok_stack, 12, "spread"))
    assert served <= {p.name for p in kwok_stack.pods}
    assert served == {p.name for p in kwok_stack.pods}  # distinct prompts spread over both


def test_a_deleted_decode_pod_stops_and_is_no_longer_picked(kwok_target: KwokTarget,
                                                           kwok_stack: Stack) -> None:
    victim, survivor = kwok_stack.pods
    assert kwok_target.cluster is not None and kwok_target.runner is not None
    process = kwok_target.runner.process_of(NAMESPACE, victim.name)
    assert process is not None and process.alive
    with kwok_target.cluster.api_client() as api_client:
        client.CoreV1Api(api_client).delete_namespaced_pod(victim.name, NAMESPACE)
    deadline = time.monotonic() + 30
    while process.alive and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process.alive
    time.sleep(1.0)  # the EPP's pod watch delivers the deletion
    served = served_by(kwok_stack, 12, "after")
    assert victim.name not in served
    assert survivor.name in served  # traffic continues (the replacement pod may join too)


def _ready_decode_pods(target: KwokTarget) -> dict[str, str]:
    """Name -> ``ip:port`` of the decode pods Ready now, as the API server has them."""
    assert target.view is not None
    profile = target.view.profile
    return {p["metadata"]["name"]: f"{p['status']['podIP']}:{profile.serving_port}"
            for p in target.view.pods(profile.decode_labels)
            if not p["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or [])}


def test_the_baseline_follows_a_drained_pods_replacement_as_a_service(
        kwok_target: KwokTarget, kwok_stack: Stack) -> None:
    """A node drained (cordoned, its decode pod deleted through the API server): the
    ReplicaSet's replacement lands on the other node with a new name and IP, and the
    baseline, like a Service, must serve from it and never from the gone pod once it is
    Ready (a baseline over the addresses of the start answers 503 for the gone pod and never
    reaches the new one). Cordoned, because kwok hands a freed IP to the next pod of its
    node: a replacement on the same node could take the old address and hide the defect."""
    before = _ready_decode_pods(kwok_target)
    assert len(before) == 2
    victim, survivor = sorted(before)
    assert kwok_target.cluster is not None
    with kwok_target.cluster.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        node = str(plain(core.read_namespaced_pod(victim, NAMESPACE))["spec"]["nodeName"])
        core.patch_node(node, {"spec": {"unschedulable": True}})
        try:
            core.delete_namespaced_pod(victim, NAMESPACE)
            now: dict[str, str] = {}
            deadline = time.monotonic() + 60
            while len(now) != 2 or victim in now:
                assert time.monotonic() < deadline, f"no Ready replacement for {victim}: {now}"
                time.sleep(0.25)
                now = _ready_decode_pods(kwok_target)
        finally:
            core.patch_node(node, {"spec": {"unschedulable": False}})
    [replacement] = set(now) - {survivor}
    assert now[replacement] != before[victim]  # a new IP: the old address cannot serve it
    deadline = time.monotonic() + 10  # the follower's round and Envoy's reload (kube-proxy's)
    while not _reaches(kwok_stack.baseline_url, replacement):
        assert time.monotonic() < deadline, f"the baseline never reached {replacement}"
        time.sleep(0.1)
    served = served_by(replace(kwok_stack, gateway_url=kwok_stack.baseline_url), 12,
                       "baseline-after")  # each must succeed
    assert victim not in served
    assert set(served) == {survivor, replacement}


def _reaches(url: str, pod: str) -> bool:
    try:
        reply = httpx.get(f"{url}/v1/models", timeout=5)
    except httpx.HTTPError:
        return False
    return reply.headers.get("x-inference-pod") == pod


def test_collected_diagnostics_hold_pods_events_and_logs(kwok_target: KwokTarget,
                                                         kwok_stack: Stack,
                                                         tmp_path: Path) -> None:
    kwok_target.collect_diagnostics(tmp_path)
    assert "vllm-decode-" in (tmp_path / "pods.yaml").read_text()
    assert (tmp_path / "events.yaml").exists()
    follower = json.loads((tmp_path / "baseline-endpoints.json").read_text())
    assert kwok_target.baseline is not None  # what the baseline's Envoy was given, and when
    assert follower["changes"] == [[t, list(s)] for t, s in kwok_target.baseline.changes]
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert {"kube-apiserver.log", "kwok.log", "envoy-baseline.log"} <= logs
    assert any(name.endswith("-envoy-proxy.log") for name in logs)
    assert any(name.endswith("-epp.log") for name in logs)


def test_the_cluster_path_runs_the_pinned_kubectl_of_the_api_servers_release(
        kwok_target: KwokTarget, kwok_stack: Stack, kubectl: str) -> None:
    assert kwok_target.view is not None
    assert kwok_target.view.kubectl_argv("get", "pods")[0] == kubectl != "kubectl"


def test_what_each_guide_version_and_mode_supports_on_kwok(tmp_path: Path) -> None:
    """The current guide in standalone mode: deploy and traffic suites. A helmfile-era version:
    traffic suites only (no objects of the guide to verify). Gateway mode: neither (no Gateway
    controller runs on kwok) — each *not supported* with its reason, never an error."""
    from fixtures.plugin import stack_unsupported_reason

    def target(**kw: object) -> KwokTarget:
        made = make_target(HarnessOptions(target="kwok", pods=2, **kw), tmp_path)  # type: ignore[arg-type]
        assert isinstance(made, KwokTarget)
        return made

    current = target(guide_version="current")
    assert current.unsupported_reason() is None and stack_unsupported_reason(current) is None
    helmfile_era = target(guide_version="v0.3")
    assert "rendered objects only" in str(helmfile_era.unsupported_reason())
    assert stack_unsupported_reason(helmfile_era) is None
    gateway = target(guide_version="current", gateway="istio")
    assert "Gateway controller" in str(gateway.unsupported_reason())
    assert "Gateway controller" in str(stack_unsupported_reason(gateway))
