"""The cluster path against a real kube-apiserver: the review items that depend on Kubernetes API
semantics (merge patch vs env, rollout status, pull policy, per-parent status, transient errors),
each run through the harness's own functions, each with a negative control."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cluster import KubeError, TransientKubeError, WaitTimeout
from fixtures.cluster.checks import container_of, deployment_problems, pool_parent_problems
from fixtures.cluster.commands import RecordedRunner, SubprocessRunner
from fixtures.cluster.guide import selector_string
from fixtures.cluster.kube import RESOURCES, KubeClient, resource_for
from fixtures.cluster.patches import DOWNWARD_API_ENV, container_patch
from fixtures.cluster.paths import repo_root
from fixtures.cluster.waits import converge, wait_for
from fixtures.controlplane import install_crds
from fixtures.kwok import KwokCluster
from fixtures.options import HarnessOptions
from fixtures.targets.cluster import ClusterTarget
from fixtures.targets.kind import KindTarget

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

Obj = dict[str, Any]
NS = "semantics"
DEPLOYMENT = RESOURCES["Deployment"]
GUIDE_DECODE = repo_root() / "tests" / "data" / "guide" / "current" / "modelserver" / \
    "gpu-vllm-base.yaml"
POOL_CRD = repo_root() / "fixtures" / "controlplane" / "crds" / \
    "inference.networking.k8s.io_inferencepools.yaml"
SIMULATED = "example.invalid/vllm:1"  # not a stand-in: kwok runs the pod, Ready at once
NEVER_READY = "lamplighter/no-launcher:1"  # left to a pod runner that this module never starts


@pytest.fixture(scope="module")
def kube(kwok_cluster: KwokCluster) -> KubeClient:
    client = KubeClient.from_kubeconfig(config_file=str(kwok_cluster.kubeconfig))
    client.create(RESOURCES["Namespace"], {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": NS}})
    return client


def _poll(what: str, probe: Any, timeout: float = 60.0) -> None:
    """The harness's own wait, on a short interval."""
    wait_for(what, probe, timeout=timeout, interval=0.2, timeout_name="test")


def _decode(name: str) -> Obj:
    """The current guide's decode Deployment, one replica of a kwok-simulated image."""
    dep = next(d for d in yaml.safe_load_all(GUIDE_DECODE.read_text())
               if d and d["kind"] == "Deployment")
    dep = copy.deepcopy(dep)
    dep["metadata"]["name"] = name
    dep["spec"]["replicas"] = 1
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    container["image"] = SIMULATED
    return dep


def _plain(name: str, image: str, pull_policy: str | None = None, replicas: int = 1) -> Obj:
    labels = {"app": name}
    container: Obj = {"name": "main", "image": image}
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container]}}}}


def _rolled_out(kube: KubeClient, name: str, timeout: float = 60.0) -> None:
    _poll(f"Deployment {name} rolled out",
          lambda: "; ".join(deployment_problems(kube.get(DEPLOYMENT, name, NS), name, 1))
          or None, timeout)


# -- 1. merge patch vs env ------------------------------------------------------------------
def test_the_json_patch_keeps_the_guides_env_and_mounts_and_adds_the_pod_identity(
        kube: KubeClient) -> None:
    dep = kube.create(DEPLOYMENT, _decode("decode-json"), NS)
    (before,) = dep["spec"]["template"]["spec"]["containers"]
    assert [e["name"] for e in before["env"]] == ["HF_TOKEN", "USER"]
    assert len(before["volumeMounts"]) == 4

    ops = container_patch(dep, "modelserver", {"image": "example.invalid/sim:2"},
                          DOWNWARD_API_ENV)
    after = container_of(kube.json_patch(DEPLOYMENT, "decode-json", ops, NS), "modelserver")

    env = {e["name"]: e for e in after["env"]}
    assert list(env) == ["HF_TOKEN", "USER", "POD_NAME", "POD_NAMESPACE"]
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"key": "HF_TOKEN",
                                                             "name": "llm-d-hf-token"}}
    assert env["USER"]["value"] == "llm-d"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert after["volumeMounts"] == before["volumeMounts"]
    assert after["image"] == "example.invalid/sim:2"


def test_a_merge_patch_of_the_container_list_drops_env_and_mounts_on_the_real_server(
        kube: KubeClient) -> None:
    """Negative control: RFC 7386 replaces the list, so the container is what the patch says."""
    kube.create(DEPLOYMENT, _decode("decode-merge"), NS)
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "modelserver", "image": "example.invalid/sim:2", "args": ["--port", "8000"]}]}}}}
    after = container_of(kube.patch(DEPLOYMENT, "decode-merge", patch, NS), "modelserver")
    assert "env" not in after and "volumeMounts" not in after
    assert after["args"] == ["--port", "8000"]


def test_the_kind_targets_simulator_patch_goes_through_the_real_server_keeping_the_pod(
        kube: KubeClient, tmp_path: Path) -> None:
    """``KindTarget.simulate_decode`` on the current guide's decode Deployment as the API
    server stores it (defaults filled in): the simulator runs in the ``modelserver`` container
    on the guide's port, HF_TOKEN and the mounts stay, the GPU request goes, and the pods the
    controller makes from the patched template carry the pod identity."""
    name = "optimized-baseline-nvidia-gpu-vllm-decode"  # the current guide's, as the profile says
    dep = _decode(name)
    account = dep["spec"]["template"]["spec"]["serviceAccountName"]  # admission requires it
    kube.create(RESOURCES["ServiceAccount"], {"apiVersion": "v1", "kind": "ServiceAccount",
                                              "metadata": {"name": account}}, NS)
    kube.create(DEPLOYMENT, dep, NS)
    (before,) = dep["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" in str(before["resources"]), "control: the guide asks for a GPU"
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "recordings.yaml").write_text("[]\n")  # any kind/helm call fails
    options = HarnessOptions(target="kind", gateway="standalone", namespace=NS,
                             guide_version="current", install=False)
    target = KindTarget(options, tmp_path, kube=kube,
                        runner=RecordedRunner(tmp_path / "rec", tmp_path / "calls.jsonl"))
    assert target.profile.decode_deployment == name
    target.simulate_decode()

    patched = kube.get(DEPLOYMENT, name, NS)
    assert patched is not None
    server = container_of(patched, "modelserver")
    assert server["image"] != SIMULATED and server["args"][server["args"].index("--port") + 1] \
        == "8000"
    assert {e["name"] for e in server["env"]} >= {"HF_TOKEN", "POD_NAME", "POD_NAMESPACE"}
    assert server["volumeMounts"] == before["volumeMounts"]
    assert server["resources"] == {}, "no GPU request left: kind has no GPUs"

    def pod_has_identity() -> str | None:
        pods = kube.list(RESOURCES["Pod"], NS, selector_string(
            dep["spec"]["selector"]["matchLabels"]))
        env = [e["name"] for p in pods for c in p["spec"]["containers"] for e in c.get("env", [])
               if c["image"] == server["image"]]
        return None if "POD_NAME" in env else f"no pod of the patched template yet: {len(pods)}"

    _poll("a pod of the patched template", pod_has_identity)


# -- 2. rollout status ----------------------------------------------------------------------
def test_rollout_status_is_a_problem_until_the_controller_has_rolled_the_template_out(
        kube: KubeClient) -> None:
    """The PATCH reply is the object as written: generation moved, observedGeneration not yet
    (the controller cannot have seen it), so that state is caught every time; then the wait
    on the controller's status ends with no problem."""
    dep = kube.create(DEPLOYMENT, _plain("rollout", SIMULATED), NS)
    _rolled_out(kube, "rollout")
    ops = container_patch(dep, "main", {"image": "example.invalid/vllm:2"})
    patched = kube.json_patch(DEPLOYMENT, "rollout", ops, NS)

    assert patched["metadata"]["generation"] > patched["status"]["observedGeneration"]
    problems = deployment_problems(patched, "rollout", 1)
    assert any("observedGeneration" in p and "rollout not observed" in p for p in problems)

    _rolled_out(kube, "rollout")
    final = kube.get(DEPLOYMENT, "rollout", NS)
    assert final is not None and deployment_problems(final, "rollout", 1) == []
    pods = kube.list(RESOURCES["Pod"], NS, selector_string({"app": "rollout"}))
    images = {c["image"] for p in pods if not p["metadata"].get("deletionTimestamp")
              for c in p["spec"]["containers"]}
    assert images == {"example.invalid/vllm:2"}


def test_a_rollout_whose_new_pods_never_get_ready_is_a_problem_though_the_old_pod_serves(
        kube: KubeClient) -> None:
    """The old ReplicaSet's pod stays Ready (maxUnavailable rounds to 0 for one replica) and
    the Deployment stays Available: readyReplicas == replicas. Only updatedReplicas and the
    old replica count show the rollout has not finished (``kubectl rollout status``)."""
    dep = kube.create(DEPLOYMENT, _plain("stuck", SIMULATED), NS)
    _rolled_out(kube, "stuck")
    kube.json_patch(DEPLOYMENT, "stuck", container_patch(dep, "main", {"image": NEVER_READY}),
                    NS)

    def settled() -> str | None:  # the controller saw the template and made the new pod
        got = kube.get(DEPLOYMENT, "stuck", NS) or {}
        status = got.get("status", {})
        if status.get("observedGeneration") != got.get("metadata", {}).get("generation"):
            return "not observed"
        return None if status.get("updatedReplicas") == 1 else f"status {status}"

    _poll("the stuck rollout observed", settled)
    time.sleep(1.0)  # give kwok time to (wrongly) make it Ready, were it going to
    stuck = kube.get(DEPLOYMENT, "stuck", NS)
    assert stuck is not None
    assert stuck["status"].get("readyReplicas") == 1, "control: the old pod still serves"
    problems = deployment_problems(stuck, "stuck", 1)
    assert any("old replicas pending termination" in p for p in problems), problems


# -- 3. pull policy -------------------------------------------------------------------------
def test_the_epp_swap_sets_if_not_present_on_the_template_and_the_pods_it_makes(
        kwok_cluster: KwokCluster, kube: KubeClient, kubectl: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The install path's own swap (``Installer.use_scheduler_ref``: ``kubectl patch`` of
    image and pull policy together, the pinned kubectl) on an EPP rendered with ``Always`` as
    the v0.3 chart does."""
    monkeypatch.setenv("KUBECONFIG", str(kwok_cluster.kubeconfig))
    monkeypatch.setenv("LAMPLIGHTER_SCHEDULER_REF_IMAGE", "example.invalid/scheduler-ref:dev")
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_version="v0.3", install=False)
    calls = tmp_path / "calls.jsonl"
    target = ClusterTarget(options, tmp_path, kube=kube, runner=SubprocessRunner(calls),
                           kubectl=kubectl)
    name, container = target.profile.epp_deployment, target.profile.epp_container
    epp = _plain(name, "example.invalid/llm-d-inference-scheduler:v0.3.2", "Always")
    epp["spec"]["template"]["spec"]["containers"][0]["name"] = container
    kube.create(DEPLOYMENT, epp, NS)

    target.installer.use_scheduler_ref()

    swapped = container_of(kube.get(DEPLOYMENT, name, NS) or {}, container)
    assert swapped["image"] == "example.invalid/scheduler-ref:dev"
    assert swapped["imagePullPolicy"] == "IfNotPresent"
    _rolled_out(kube, name)
    pods = [p for p in kube.list(RESOURCES["Pod"], NS, selector_string({"app": name}))
            if not p["metadata"].get("deletionTimestamp")]
    assert pods
    for pod in pods:
        (made,) = pod["spec"]["containers"]
        assert (made["image"], made["imagePullPolicy"]) == (
            "example.invalid/scheduler-ref:dev", "IfNotPresent")
    ran = [json.loads(line)["argv"][0] for line in calls.read_text().splitlines()]
    assert ran and set(ran) == {kubectl}, f"the pinned kubectl ran every call: {ran}"


def test_patching_only_the_image_keeps_always(kube: KubeClient) -> None:
    """Negative control: the server does not re-default the policy when the image changes."""
    dep = kube.create(DEPLOYMENT, _plain("always", "example.invalid/epp:1", "Always"), NS)
    patched = kube.json_patch(DEPLOYMENT, "always", container_patch(
        dep, "main", {"image": "example.invalid/epp:2"}), NS)
    assert container_of(patched, "main")["imagePullPolicy"] == "Always"


# -- 4. per-parent status -------------------------------------------------------------------
POOL = resource_for("inference.networking.k8s.io/v1", "InferencePool")


def _condition(status: str, reason: str, type_: str = "Accepted", observed: int = 1) -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": reason,
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": observed}


def _parent(name: str, accepted: bool, observed: int = 1, namespace: str = NS) -> Obj:
    return {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                          "namespace": namespace, "name": name},
            "conditions": [_condition("True" if accepted else "False",
                                      "Accepted" if accepted else "NotAllowedByListeners",
                                      observed=observed),
                           _condition("True", "ResolvedRefs", "ResolvedRefs", observed)]}


def _create_pool(kube: KubeClient, name: str) -> str:
    kube.create(POOL, {
        "apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "decode"}},
                 "targetPorts": [{"number": 8000}],
                 "endpointPickerRef": {"name": "epp", "port": {"number": 9002}}}}, NS)
    return name


@pytest.fixture(scope="module")
def pool_crd(kwok_cluster: KwokCluster) -> None:
    install_crds(kwok_cluster.kubeconfig, [POOL_CRD])


@pytest.fixture(scope="module")
def pool(pool_crd: None, kube: KubeClient) -> str:
    return _create_pool(kube, "pool")


def test_a_pool_rejected_by_its_gateway_is_a_problem_whatever_another_gateway_says(
        kube: KubeClient, pool: str) -> None:
    kube.patch_status(POOL, pool, {"status": {"parents": [
        _parent("gw-accepts", True), _parent("gw-rejects", False)]}}, NS)
    written = kube.get(POOL, pool, NS)
    assert written is not None and len(written["status"]["parents"]) == 2

    problems = pool_parent_problems(written, pool, "gw-rejects", NS)
    assert len(problems) == 1, problems
    assert "status.parents[1] (Gateway semantics/gw-rejects)" in problems[0]
    assert "is False" in problems[0] and "NotAllowedByListeners" in problems[0]
    # control: for the Gateway that accepted it, the other one's rejection is not ours
    assert pool_parent_problems(written, pool, "gw-accepts", NS) == []

    kube.patch_status(POOL, pool, {"status": {"parents": [
        _parent("gw-accepts", True), _parent("gw-rejects", True)]}}, NS)
    assert pool_parent_problems(kube.get(POOL, pool, NS), pool, "gw-rejects", NS) == []


def test_a_foreign_parent_and_a_status_older_than_the_spec_are_problems_on_the_real_server(
        kube: KubeClient, pool_crd: None) -> None:
    """The API server bumps metadata.generation on a spec change and not on a status write:
    Accepted written for generation 1 says nothing about generation 2's spec."""
    name = _create_pool(kube, "pool-stale")
    kube.patch_status(POOL, name, {"status": {"parents": [
        _parent("our-gw", True, namespace="elsewhere")]}}, NS)
    (foreign,) = pool_parent_problems(kube.get(POOL, name, NS), name, "our-gw", NS)
    assert f"has no entry for Gateway {NS}/our-gw" in foreign
    assert "entries: Gateway elsewhere/our-gw" in foreign

    kube.patch_status(POOL, name, {"status": {"parents": [_parent("our-gw", True)]}}, NS)
    assert pool_parent_problems(kube.get(POOL, name, NS), name, "our-gw", NS) == [], \
        "control: accepted for the current generation"
    kube.patch(POOL, name, {"spec": {"targetPorts": [{"number": 8001}]}}, NS)
    current = kube.get(POOL, name, NS)
    assert current is not None and current["metadata"]["generation"] == 2
    problems = pool_parent_problems(current, name, "our-gw", NS)
    assert [p.split(": ", 1)[1].split(" (")[0] for p in problems] == [
        "conditions[Accepted] is stale: observedGeneration 1 < metadata.generation 2",
        "conditions[ResolvedRefs] is stale: observedGeneration 1 < metadata.generation 2"]

    kube.patch_status(POOL, name, {"status": {"parents": [
        _parent("our-gw", True, observed=2)]}}, NS)
    after = kube.get(POOL, name, NS)
    assert after is not None and after["metadata"]["generation"] == 2, "status is no spec"
    assert pool_parent_problems(after, name, "our-gw", NS) == []


def test_the_crd_schema_refuses_a_parent_without_parent_ref(kube: KubeClient,
                                                            pool: str) -> None:
    malformed = {"conditions": [_condition("True", "Accepted")]}
    with pytest.raises(KubeError, match=r"HTTP 422.*parentRef") as err:
        kube.patch_status(POOL, pool, {"status": {"parents": [malformed]}}, NS)
    assert not isinstance(err.value, TransientKubeError)


# -- 5. transient errors (last: it restarts the API server) ----------------------------------
@dataclass
class _Restart:
    thread: threading.Thread
    errors: list[BaseException]


@pytest.fixture
def restarts() -> Iterator[list[_Restart]]:
    """API server restarts in threads; joined after the test, also on failure, and a restart
    that failed fails the test (else later ones would fail on a dead server)."""
    started: list[_Restart] = []
    yield started
    for restart in started:
        restart.thread.join(timeout=120)
    failed = [str(e) for r in started for e in r.errors]
    assert not failed, f"restarting the API server failed: {failed}"


def _restart_in_background(kwok_cluster: KwokCluster, kube: KubeClient,
                           started: list[_Restart], down: float) -> None:
    """Restart the API server in a thread; return once it is down."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            kwok_cluster.plane.restart_api_server(down)
        except BaseException as exc:  # reported by the fixture
            errors.append(exc)

    restart = _Restart(threading.Thread(target=run, daemon=True), errors)
    started.append(restart)
    restart.thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the server is down once a request cannot reach it
        try:
            kube.get(RESOURCES["Namespace"], NS)
        except TransientKubeError:
            return
        time.sleep(0.05)
    raise AssertionError("the API server did not go down within 30s")


def test_a_wait_polls_through_an_api_server_restart(
        kwok_cluster: KwokCluster, kube: KubeClient, restarts: list[_Restart]) -> None:
    kube.create(DEPLOYMENT, _plain("outage", SIMULATED), NS)
    seen: list[str] = []

    def probe() -> str | None:
        try:
            dep = kube.get(DEPLOYMENT, "outage", NS)
        except TransientKubeError as exc:
            seen.append(str(exc))
            raise
        return "; ".join(deployment_problems(dep, "outage", 1)) or None

    _restart_in_background(kwok_cluster, kube, restarts, down=3.0)
    _poll("Deployment outage rolled out across a restart", probe, timeout=90)

    assert seen, "control: the wait did see the API server gone"
    restarts[0].thread.join(timeout=60)
    assert kube.get(RESOURCES["Namespace"], NS) is not None


def test_converge_counts_its_streak_again_after_an_api_server_restart(
        kwok_cluster: KwokCluster, kube: KubeClient, restarts: list[_Restart]) -> None:
    """Each success in the streak must come after the last error: none straddles the outage."""
    outcomes: list[str] = []

    def request() -> str | None:
        try:
            kube.get(RESOURCES["Namespace"], NS)
        except TransientKubeError:
            outcomes.append("error")
            raise
        outcomes.append("ok")
        return None

    _restart_in_background(kwok_cluster, kube, restarts, down=2.0)
    converge("the API server", request, successes=5, timeout=90, interval=0.2)
    assert "error" in outcomes, "control: the outage was seen"
    assert outcomes[-5:] == ["ok"] * 5 and outcomes[-6] == "error"


def test_a_wait_that_outlasts_its_timeout_names_the_last_error(
        kwok_cluster: KwokCluster, kube: KubeClient, restarts: list[_Restart]) -> None:
    """Negative control: down past the timeout, the wait fails and says why."""
    _restart_in_background(kwok_cluster, kube, restarts, down=6.0)
    with pytest.raises(WaitTimeout, match=r"not within 2s .*TransientKubeError: GET "
                                          r"/apis/apps/v1/namespaces/semantics/deployments"):
        _poll("Deployment outage readable", lambda: (kube.get(DEPLOYMENT, "outage", NS)
                                                     and None), timeout=2.0)
    restarts[0].thread.join(timeout=60)
    # The API server answers again. (The controllers' watches come back on client-go's
    # backoff, up to ~55 s after three outages: not the harness's to wait for, and this is
    # the module's last test.)
    assert kube.get(DEPLOYMENT, "outage", NS) is not None
