"""KindTarget: reuses or creates the cluster, loads images, swaps vLLM for the simulator.

The current guide's swap runs on a real API server (``tests/kwok/
test_cluster_path_semantics.py``); the helmfile-era one here, on its rendered objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.cluster import ClusterError, KubeError
from fixtures.cluster.commands import RecordedRunner
from fixtures.cluster.kube import RESOURCES, KubeClient
from fixtures.cluster.patches import DOWNWARD_API_ENV, container_patch
from fixtures.options import HarnessOptions
from fixtures.targets.kind import KindTarget

from .conftest import require_guide_fixtures
from .emulator import Emulator
from .seed import GuideSeed


def _runner(tmp_path: Path, clusters: str) -> RecordedRunner:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "recordings.yaml").write_text(
        f"- match: 'kind get clusters'\n  stdout: \"{clusters}\"\n- match: 'kind *'\n")
    return RecordedRunner(rec, tmp_path / "calls.jsonl")


@pytest.mark.parametrize(("existing", "creates"), [("lamplighter\\n", False), ("", True)])
def test_kind_cluster_reused_or_created_and_images_loaded(tmp_path: Path, existing: str,
                                                         creates: bool) -> None:
    options = HarnessOptions(target="kind", gateway="istio", guide_version="v0.3")
    target = KindTarget(options, tmp_path, runner=_runner(tmp_path, existing))
    target.ensure_cluster()
    argvs = [json.loads(x)["argv"] for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert any(a[:3] == ["kind", "create", "cluster"] for a in argvs) is creates
    load = next(a for a in argvs if a[:3] == ["kind", "load", "docker-image"])
    assert any("scheduler-ref" in x for x in load) and any("simulator" in x for x in load)
    assert target.options.kube_context == "kind-lamplighter"


def _image_entrypoint() -> list[str]:
    """The ENTRYPOINT of simulator/Dockerfile (exec form)."""
    dockerfile = Path(__file__).resolve().parents[2] / "simulator" / "Dockerfile"
    line = next(x for x in dockerfile.read_text().splitlines() if x.startswith("ENTRYPOINT"))
    return list(json.loads(line.removeprefix("ENTRYPOINT").strip()))


def test_decode_pods_run_the_simulator(emulator: Emulator, tmp_path: Path) -> None:
    require_guide_fixtures("v0.3")
    seed = GuideSeed(emulator, "v0.3", "istio", "ns").seed()
    options = HarnessOptions(target="kind", gateway="istio", namespace="ns",
                             guide_version="v0.3", install=False)
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    target = KindTarget(options, tmp_path, kube=kube, runner=_runner(tmp_path, ""))
    target.simulate_decode()
    dep = emulator.find("Deployment", seed.profile.decode_deployment, "ns")
    assert dep is not None
    (vllm,) = dep["spec"]["template"]["spec"]["containers"]
    assert vllm["command"] == _image_entrypoint(), "the patch must run what the image has"
    assert "8200" in vllm["args"] and "--enable-admin" in vllm["args"]
    assert dep["spec"]["template"]["spec"]["initContainers"][0]["name"] == "routing-proxy"


def test_decode_patch_keeps_env_and_mounts_and_names_each_pod(emulator: Emulator,
                                                              tmp_path: Path) -> None:
    """The guide's env and volume mounts stay; POD_NAME/POD_NAMESPACE come from the downward
    API, so each simulator answers with its own pod name (not the ``sim-0`` fallback)."""
    require_guide_fixtures("v0.3")
    seed = GuideSeed(emulator, "v0.3", "istio", "ns").seed()
    before = emulator.find("Deployment", seed.profile.decode_deployment, "ns")
    assert before is not None
    (old,) = before["spec"]["template"]["spec"]["containers"]
    assert {"name": "UCX_TLS", "value": "cuda_ipc,cuda_copy,tcp"} in old["env"]
    assert old["volumeMounts"], "control: the guide's container mounts something"
    options = HarnessOptions(target="kind", gateway="istio", namespace="ns",
                             guide_version="v0.3", install=False)
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    KindTarget(options, tmp_path, kube=kube, runner=_runner(tmp_path, "")).simulate_decode()
    dep = emulator.find("Deployment", seed.profile.decode_deployment, "ns")
    assert dep is not None
    (vllm,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in vllm["env"]}
    assert env["UCX_TLS"] == {"name": "UCX_TLS", "value": "cuda_ipc,cuda_copy,tcp"}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert vllm["volumeMounts"] == old["volumeMounts"]
    assert vllm["imagePullPolicy"] == "IfNotPresent"
    assert "nvidia.com/gpu" in str(old["resources"])
    assert vllm["resources"] == {}, "no GPU request left: kind has no GPUs"


def test_container_patch_replaces_an_existing_pod_name_and_refuses_a_missing_container() -> None:
    dep = {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [
        {"name": "proxy"}, {"name": "vllm", "env": [{"name": "POD_NAME", "value": "x"},
                                                     {"name": "A", "value": "1"}]}]}}}}
    ops = container_patch(dep, "vllm", {"image": "i"}, DOWNWARD_API_ENV)
    assert ops[0] == {"op": "test", "path": "/spec/template/spec/containers/1/name",
                      "value": "vllm"}
    assert ops[1] == {"op": "add", "path": "/spec/template/spec/containers/1/image",
                      "value": "i"}
    assert [e["name"] for e in ops[-1]["value"]] == ["A", "POD_NAME", "POD_NAMESPACE"]
    with pytest.raises(ClusterError, match=r"Deployment d: no container 'vllm' "
                                           r"\(containers: \['proxy'\]\)"):
        container_patch({"metadata": {"name": "d"}, "spec": {"template": {"spec": {
            "containers": [{"name": "proxy"}]}}}}, "vllm", {})


def test_a_reordered_container_list_fails_the_patch_instead_of_patching_another(
        emulator: Emulator, tmp_path: Path) -> None:
    """The ``test`` op guards the index: the API server refuses the whole patch."""
    require_guide_fixtures("v0.3")
    seed = GuideSeed(emulator, "v0.3", "istio", "ns").seed()
    dep = emulator.find("Deployment", seed.profile.decode_deployment, "ns")
    assert dep is not None
    ops = container_patch(dep, "vllm", {"image": "i"})
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    containers = dep["spec"]["template"]["spec"]["containers"]
    containers.insert(0, {"name": "other", "image": "o"})
    emulator.put(dep)
    with pytest.raises(KubeError, match="HTTP 422"):
        kube.json_patch(RESOURCES["Deployment"], seed.profile.decode_deployment, ops, "ns")
    after = emulator.find("Deployment", seed.profile.decode_deployment, "ns")
    assert after is not None
    images = [c["image"] for c in after["spec"]["template"]["spec"]["containers"]]
    assert images[0] == "o" and "i" not in images, "nothing was patched"


def test_deploy_installs_once_for_deploy_suite_and_stack(emulator: Emulator, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The deploy suite calls deploy() and the traffic suites up() -> deploy(): one install."""
    options = HarnessOptions(target="kind", gateway="istio", namespace="ns", guide_version="v0.3")
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    target = KindTarget(options, tmp_path, kube=kube, runner=_runner(tmp_path, "lamplighter\\n"))
    steps: list[str] = []
    monkeypatch.setattr(target.installer, "install", lambda: steps.append("helmfile"))
    monkeypatch.setattr(target, "simulate_decode", lambda: steps.append("simulator"))
    monkeypatch.setattr(target, "wait_ready", lambda: steps.append("ready"))
    first, second = target.deploy(), target.deploy()
    assert steps == ["helmfile", "simulator", "ready"], steps
    assert first.namespace == second.namespace == "ns"
    argvs = [json.loads(x)["argv"] for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert sum(a[:3] == ["kind", "load", "docker-image"] for a in argvs) == 1, argvs
