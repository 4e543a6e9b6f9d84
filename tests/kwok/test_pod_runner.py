"""Pods whose image stands for a process run for real: a decode pod on a kwok node is a
simulator on the pod's loopback IP, its Ready condition follows the process, deleting it stops
it; containers share the pod's IP, read its ConfigMap volumes and are probed as declared."""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from kubernetes import client

from fixtures.kwok import KwokCluster
from fixtures.kwok.launchers import model_of, simulator_launcher
from fixtures.kwok.objects import condition, plain
from fixtures.kwok.pod_runner import (
    Launch,
    PodRunner,
    RunnableContainer,
    RunnablePod,
    image_repository,
)
from fixtures.ports import PortAllocator
from fixtures.processes import ProcessSupervisor
from tests.support.kwok_networks import worker_pod_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NAMESPACE = "kwok-runner"
SIMULATOR = "lamplighter/simulator"
GATE = "lamplighter/test-gate"  # an image whose process's readiness the test controls
NO_LAUNCHER = "lamplighter/no-launcher"  # kwok leaves it to the runner, which has no process


@pytest.fixture(scope="module")
def gate_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate") / "ready"


@pytest.fixture(scope="module")
def runner(kwok_cluster: KwokCluster, gate_file: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodRunner]:
    def gated(pod: RunnablePod, container: RunnableContainer) -> Launch:
        return Launch([sys.executable, "-c", "import time; time.sleep(600)"], gate_file.exists)

    launchers = {SIMULATOR: simulator_launcher(), GATE: gated}
    with ProcessSupervisor(tmp_path_factory.mktemp("runner") / "logs") as supervisor, \
            PodRunner(kwok_cluster.kubeconfig, supervisor, launchers,
                      kwok_cluster.node_names, claimed=kwok_cluster.run_images) as running, \
            kwok_cluster.api_client() as api_client:
        client.CoreV1Api(api_client).create_namespace(
            cast(Any, {"metadata": {"name": NAMESPACE}}))
        yield running


@pytest.fixture
def core(kwok_cluster: KwokCluster) -> Iterator[client.CoreV1Api]:
    with kwok_cluster.api_client() as api_client:
        yield client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def pod_port() -> Iterator[int]:
    """One container port for every pod (each has its own IP); the lock keeps ip:port ours."""
    with PortAllocator() as allocator:
        yield allocator.reserve()


def _pod(name: str, image: str, port: int, restart_policy: str = "Always") -> Any:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "decode"}},
            "spec": {"restartPolicy": restart_policy, "containers": [{
                "name": "vllm", "image": f"{image}:never-pulled",
                "args": ["--model", "sim-model", "--port", str(port)],
                "ports": [{"containerPort": port}]}]}}


def _wait(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f}s")
        time.sleep(0.2)


def _read(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    return plain(core.read_namespaced_pod(name, NAMESPACE))


def _is_ready(core: client.CoreV1Api, name: str) -> bool:
    return condition(_read(core, name), "Ready") == "True"


def test_decode_pods_serve_on_their_pod_ips_and_become_ready(
        runner: PodRunner, core: client.CoreV1Api, pod_port: int) -> None:
    for name in ("decode-a", "decode-b"):
        core.create_namespaced_pod(NAMESPACE, _pod(name, SIMULATOR, pod_port))
    for name in ("decode-a", "decode-b"):
        _wait(f"{name} Ready", partial(_is_ready, core, name))
        pod = _read(core, name)
        ip = pod["status"]["podIP"]
        assert ipaddress.IPv4Address(ip) in worker_pod_network()
        reply = httpx.get(f"http://{ip}:{pod_port}/v1/models", timeout=5)
        assert reply.status_code == 200
        assert [m["id"] for m in reply.json()["data"]] == ["sim-model"]
        assert reply.headers["x-inference-pod"] == name
        assert reply.headers["x-inference-namespace"] == NAMESPACE
        assert [c["ready"] for c in pod["status"]["containerStatuses"]] == [True]


def test_deleting_a_decode_pod_stops_its_simulator(runner: PodRunner, core: client.CoreV1Api,
                                                   pod_port: int) -> None:
    ips = {n: _read(core, n)["status"]["podIP"] for n in ("decode-a", "decode-b")}
    process = runner.process_of(NAMESPACE, "decode-a")
    assert process is not None and process.alive

    core.delete_namespaced_pod("decode-a", NAMESPACE)
    _wait("decode-a's simulator stopped", lambda: not process.alive, timeout=30)
    assert runner.process_of(NAMESPACE, "decode-a") is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{ips['decode-a']}:{pod_port}/health", timeout=2)
    # negative control: the other pod's simulator was left alone and still serves
    assert httpx.get(f"http://{ips['decode-b']}:{pod_port}/health", timeout=5).status_code == 200
    assert condition(_read(core, "decode-b"), "Ready") == "True"


def test_a_ready_condition_rewritten_by_another_writer_is_put_right(
        runner: PodRunner, core: client.CoreV1Api) -> None:
    """As the node lifecycle controller does to pods of a node it thinks silent."""
    patched = plain(core.patch_namespaced_pod_status("decode-b", NAMESPACE, cast(Any, {
        "status": {"conditions": [{"type": "Ready", "status": "False",
                                   "reason": "NodeNotReady"}]}})))
    assert condition(patched, "Ready") == "False"  # the rewrite took effect
    _wait("decode-b Ready again", partial(_is_ready, core, "decode-b"), timeout=10)
    reasons = {c["type"]: c.get("reason") for c in _read(core, "decode-b")["status"]["conditions"]}
    assert reasons["Ready"] == "ProcessReady"


def test_pod_readiness_follows_its_process(runner: PodRunner, core: client.CoreV1Api,
                                          gate_file: Path, pod_port: int) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("gated", GATE, pod_port, "Never"))
    _wait("gated's process started", lambda: runner.process_of(NAMESPACE, "gated"))
    time.sleep(2)  # kwok would have marked a simulated pod Ready well within this
    pod = _read(core, "gated")
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"]
    assert condition(pod, "Ready") == "False"

    gate_file.touch()
    _wait("gated Ready", partial(_is_ready, core, "gated"))

    process = runner.process_of(NAMESPACE, "gated")
    assert process is not None
    process.stop()
    _wait("gated not Ready after its process exited",
          lambda: condition(_read(core, "gated"), "Ready") == "False", timeout=10)
    reasons = {c["type"]: c.get("reason") for c in _read(core, "gated")["status"]["conditions"]}
    assert reasons["Ready"] == "ProcessExited"
    core.delete_namespaced_pod("gated", NAMESPACE)


def test_a_crashed_container_is_restarted_in_place_and_counted(
        runner: PodRunner, core: client.CoreV1Api, pod_port: int) -> None:
    """restartPolicy Always (a Deployment's pods): SIGKILL the simulator, and the runner starts
    it again on the same IP with restartCount 1, as a kubelet would; (negative control) a pod
    with restartPolicy Never stays down, see test_pod_readiness_follows_its_process."""
    core.create_namespaced_pod(NAMESPACE, _pod("crashy", SIMULATOR, pod_port))
    _wait("crashy Ready", partial(_is_ready, core, "crashy"))
    ip = _read(core, "crashy")["status"]["podIP"]
    process = runner.process_of(NAMESPACE, "crashy")
    assert process is not None
    first_pid = process.pid
    process.kill()

    def restarted() -> bool:
        pod = _read(core, "crashy")
        statuses = pod["status"].get("containerStatuses") or [{}]
        return condition(pod, "Ready") == "True" and statuses[0].get("restartCount") == 1

    _wait("crashy restarted and Ready", restarted, timeout=30)
    assert process.alive and process.pid != first_pid
    assert httpx.get(f"http://{ip}:{pod_port}/health", timeout=5).status_code == 200
    core.delete_namespaced_pod("crashy", NAMESPACE)


def test_a_pod_whose_image_has_no_process_is_reported_and_not_run(
        runner: PodRunner, core: client.CoreV1Api, pod_port: int) -> None:
    core.create_namespaced_pod(NAMESPACE, _pod("mystery", NO_LAUNCHER, pod_port))
    problem = _wait("a problem reported", lambda: next(iter(
        p for p in runner.problems.values() if "mystery" in p), None), timeout=30)
    assert f"{NAMESPACE}/mystery" in problem and f"'{NO_LAUNCHER}:never-pulled'" in problem
    assert runner.process_of(NAMESPACE, "mystery") is None
    _wait("the reason written on the pod", lambda: {
        c["type"]: c.get("reason") for c in _read(core, "mystery")["status"]["conditions"]
    }["Ready"] == "CannotRun", timeout=10)
    ready = next(c for c in _read(core, "mystery")["status"]["conditions"]
                 if c["type"] == "Ready")
    assert ready["status"] == "False" and NO_LAUNCHER in ready["message"]


@pytest.mark.parametrize(("args", "model"), [
    (["--model", "m1", "--port", "8000"], "m1"),
    (["--model=m2"], "m2"),
    (["vllm", "serve", "Qwen/Qwen3-0.6B", "--port", "8000"], "Qwen/Qwen3-0.6B"),
    (["--port", "8000"], "fallback"),
])
def test_the_model_comes_from_the_container_command_line(args: list[str], model: str) -> None:
    assert model_of(args, "fallback") == model


def test_a_pod_without_a_container_port_is_refused_by_name() -> None:
    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
           "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v1"}]},
           "status": {"podIP": "127.1.0.3"}}
    runnable = RunnablePod.from_pod(pod)
    with pytest.raises(ValueError, match=r"pod ns/p: container 'vllm' declares no containerPort"):
        simulator_launcher()(runnable, runnable.containers[0])
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8000}]  # type: ignore[index]
    assert RunnablePod.from_pod(pod).containers[0].port == 8000


@pytest.mark.parametrize(("image", "repository"), [
    ("docker.io/envoyproxy/envoy:distroless-v1.33.2", "envoyproxy/envoy"),
    ("envoyproxy/envoy:v1", "envoyproxy/envoy"),
    ("ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.9.0",
     "ghcr.io/llm-d/llm-d-router-endpoint-picker"),
    ("vllm/vllm-openai@sha256:abc", "vllm/vllm-openai"),
    ("localhost:5000/sim:dev", "localhost:5000/sim"),
    ("docker.io/library/busybox", "busybox"),
])
def test_an_image_is_looked_up_by_its_repository(image: str, repository: str) -> None:
    assert image_repository(image) == repository


def test_container_env_resolves_field_refs_and_never_reads_secrets() -> None:
    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
           "spec": {"containers": [{"name": "epp", "image": "x", "env": [
               {"name": "NAMESPACE", "valueFrom": field("metadata.namespace")},
               {"name": "POD_NAME", "valueFrom": field("metadata.name")},
               {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
               {"name": "USER", "value": "llm-d"}]}]},
           "status": {"podIP": "127.1.0.3"}}
    env = RunnablePod.from_pod(pod).containers[0].env
    assert env == {"NAMESPACE": "ns", "POD_NAME": "p", "USER": "llm-d"}
