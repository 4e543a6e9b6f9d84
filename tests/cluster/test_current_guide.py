"""The current guide (optimized-baseline): provider matrix, and its install path as argv
(helm for the router chart, ``kubectl apply -k`` for model servers and the Gateway recipe),
every call naming ``--kube-context``."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cluster import ClusterError
from fixtures.cluster.commands import RecordedRunner
from fixtures.cluster.kube import KubeClient
from fixtures.cluster.matrix import combination, matrix
from fixtures.cluster.paths import guide_fixture_dir, repo_root
from fixtures.cluster.profiles import available_versions, load_profile
from fixtures.cluster.router_checks import discovery_of, epp_discovery_problems
from fixtures.options import HarnessOptions
from fixtures.targets.cluster import ClusterTarget

from .emulator import Emulator
from .seed import CURRENT_NS, CurrentGuideSeed


def test_matrix_lists_every_combination_and_why_the_unsupported_are() -> None:
    supported = {(c.version, c.mode, c.provider) for c in matrix() if c.supported}
    current = {(m, p) for v, m, p in supported if v == "current"}
    assert current == {("standalone", "standalone"), ("gateway", "none"), ("gateway", "gke"),
                       ("gateway", "agentgateway"), ("gateway", "istio")}
    assert ("v0.3", "gateway", "istio") in supported
    assert ("v0.3", "gateway", "agentgateway") not in supported  # from v0.4
    kgw = combination("current", "kgateway")
    assert kgw.reason is not None and "llm-d-router-gateway chart v0.9.0" in kgw.reason
    old = combination("v0.3", "standalone")
    assert old.reason == ("guide v0.3 has no standalone mode (modes: gateway); provider "
                          "standalone needs it")
    assert all(c.reason for c in matrix() if not c.supported)


@pytest.mark.parametrize(("version", "gateway"), [("current", "kgateway"),
                                                   ("v0.3", "standalone"), ("v0.2", "none")])
def test_unsupported_combination_is_a_reason_not_an_error(version: str, gateway: str,
                                                          tmp_path: Path) -> None:
    options = HarnessOptions(target="cluster", gateway=gateway, guide_version=version,
                             install=False)
    target = ClusterTarget(options, tmp_path, kube=object())  # type: ignore[arg-type]
    reason = target.unsupported_reason()
    assert reason and f"guide {version} has no" in reason


def test_readme_matrix_table_is_the_matrix() -> None:
    """The README's provider table is generated knowledge: it must not drift from the data."""
    text = (repo_root() / "README.md").read_text()
    header = next(x for x in text.splitlines() if x.startswith("| guide | istio |"))
    providers = [c.strip() for c in header.strip("|").split("|")][1:]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")][1:]
            for r in text.splitlines()
            if r.startswith("| v0.") or r.startswith("| current |")}
    want = {v: ["yes" if combination(v, p).supported else "—" for p in providers]
            for v in available_versions()}
    assert rows == want


def _guide(root: Path) -> Path:
    """An llm-d checkout's layout, only the files the install names."""
    guide = root / "guides" / "optimized-baseline"
    for path in ("router/optimized-baseline.values.yaml", "../recipes/router/base.values.yaml",
                 "modelserver/gpu/vllm/base/kustomization.yaml",
                 "modelserver/gpu/vllm/gke/kustomization.yaml",
                 "../recipes/gateway/istio/kustomization.yaml",
                 "../recipes/gateway/gke-l7-regional-external-managed/kustomization.yaml"):
        (guide / path).parent.mkdir(parents=True, exist_ok=True)
        (guide / path).write_text("{}\n")
    return guide


def _target(emulator: Emulator, tmp_path: Path, guide: Path,
            provider: str) -> tuple[ClusterTarget, Path]:
    CurrentGuideSeed(emulator, provider, CURRENT_NS).seed(installed=False)
    recordings = tmp_path / "recordings"
    recordings.mkdir(exist_ok=True)
    (recordings / "recordings.yaml").write_text(
        '- {match: "helm *", stdout: ""}\n- {match: "kubectl *", stdout: ""}\n')
    calls = tmp_path / "calls.jsonl"
    options = HarnessOptions(target="cluster", gateway=provider, namespace=CURRENT_NS,
                             guide_dir=guide, guide_version="current", scheduler="llm-d",
                             kube_context="ctx-b")
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    return ClusterTarget(options, tmp_path / "run", kube=kube,
                         runner=RecordedRunner(recordings, calls)), calls


def _argvs(calls: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in calls.read_text().splitlines()]


def test_gateway_mode_installs_recipe_router_chart_and_model_servers_in_order(
        emulator: Emulator, tmp_path: Path) -> None:
    guide = _guide(tmp_path / "llm-d")
    target, calls = _target(emulator, tmp_path, guide, "istio")
    target.install_guide()
    recipe, helm, models = _argvs(calls)
    assert recipe == ["kubectl", "--context", "ctx-b", "apply", "-n", CURRENT_NS, "-k",
                      str(guide / "../recipes/gateway/istio")]
    release = target.profile.postfix
    assert helm[:3] == ["helm", "--kube-context", "ctx-b"]
    assert helm[3:8] == ["upgrade", "--install", release,
                         "oci://ghcr.io/llm-d/charts/llm-d-router-gateway", "--version"]
    assert helm[8] == "v0.9.0" and helm[helm.index("-n") + 1] == CURRENT_NS
    values = [helm[i + 1] for i, a in enumerate(helm) if a == "-f"]
    assert values == [str(guide / "../recipes/router/base.values.yaml"),
                      str(guide / "router/optimized-baseline.values.yaml")]  # README order
    sets = [helm[i + 1] for i, a in enumerate(helm) if a == "--set"]
    assert sets == ["provider.name=istio", "httpRoute.create=true",
                    "httpRoute.inferenceGatewayName=llm-d-inference-gateway"]
    assert models == ["kubectl", "--context", "ctx-b", "apply", "-n", CURRENT_NS, "-k",
                      str(guide / "modelserver/gpu/vllm/base")]
    target.down()
    undo = _argvs(calls)[3:]
    assert [a[3] for a in undo] == ["delete", "uninstall", "delete"]
    assert undo[0][-2:] == [str(guide / "modelserver/gpu/vllm/base"), "--ignore-not-found"]
    assert all("ctx-b" in a for a in _argvs(calls)), "every call names the kube context"


def test_standalone_installs_the_standalone_chart_without_a_gateway(
        emulator: Emulator, tmp_path: Path) -> None:
    guide = _guide(tmp_path / "llm-d")
    target, calls = _target(emulator, tmp_path, guide, "standalone")
    target.install_guide()
    helm, models = _argvs(calls)
    assert "oci://ghcr.io/llm-d/charts/llm-d-router-standalone" in helm
    assert "--set" not in helm, "standalone takes the guide's values as they are"
    assert models[-1] == str(guide / "modelserver/gpu/vllm/base")


def test_missing_guide_file_fails_before_anything_is_created(emulator: Emulator,
                                                             tmp_path: Path) -> None:
    guide = _guide(tmp_path / "llm-d")
    (guide / "modelserver/gpu/vllm/gke/kustomization.yaml").unlink()
    target, calls = _target(emulator, tmp_path, guide, "gke")
    with pytest.raises(ClusterError, match=r"model-server overlay .*gpu/vllm/gke/"
                                           r"kustomization\.yaml not found"):
        target.install_guide()
    assert not calls.exists(), "no helm/kubectl call ran"
    assert target.installer.ledger.created == [], "not even the namespace was touched"


def _rendered(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    path = guide_fixture_dir("current") / name
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(path.read_text())
            if d}


def test_discovery_is_told_apart_pool_selector_file() -> None:
    """Pool (``--pool-name``), label selector (``--endpoint-selector``, GAIE's pool-less
    discovery) and file (the no-Kubernetes guide's ``file-discovery`` plugin); a profile
    expecting the pool fails the other two, naming what the EPP does instead."""
    objs = _rendered("standalone/router.yaml")
    profile = load_profile("current", "standalone")
    dep = copy.deepcopy(objs[("Deployment", "optimized-baseline-epp")])
    cm = copy.deepcopy(objs[("ConfigMap", "optimized-baseline-epp")])
    assert discovery_of(dep, cm, profile) == "pool"
    assert epp_discovery_problems(dep, cm, profile) == []
    epp = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "epp")
    i = epp["args"].index("--pool-name")
    epp["args"][i:i + 2] = ["--endpoint-selector", "llm-d.ai/guide=optimized-baseline"]
    assert discovery_of(dep, cm, profile) == "selector"
    (problem,) = epp_discovery_problems(dep, cm, profile)
    assert "discovers endpoints by selector" in problem and "expects pool" in problem
    no_k8s = (guide_fixture_dir("current") / "no-kubernetes" / "config.yaml").read_text()
    cm["data"][profile.epp_config_key] = no_k8s
    assert discovery_of(dep, cm, profile) == "file"


@pytest.mark.parametrize("gateway", ["standalone", "none", "gke", "istio", "agentgateway"])
def test_profile_matches_the_rendered_objects(gateway: str) -> None:
    """Chart, pool, selector, route and model-server facts of the profile are the render's."""
    profile = load_profile("current", gateway)
    mode = "standalone" if gateway == "standalone" else f"gateway-{gateway}"
    text = (guide_fixture_dir("current") / mode / "router.yaml").read_text()
    assert f"# Source: {profile.releases[0].chart}/templates/" in text
    objs = _rendered(f"{mode}/router.yaml")
    pool = objs[("InferencePool", profile.pool_name)]
    assert pool["apiVersion"] == profile.pool_api_version
    assert pool["spec"]["selector"]["matchLabels"] == profile.pool_selector
    assert [p["number"] for p in pool["spec"]["targetPorts"]] == [profile.pool_target_port]
    svc = objs[("Service", profile.epp_service)]
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == profile.epp_service_ports
    route = objs.get(("HTTPRoute", profile.route_name))
    if gateway == "standalone":
        assert route is None and profile.proxy is not None
        assert ("ConfigMap", profile.proxy.configmap) in objs
    else:
        assert route is not None and profile.proxy is None
        assert route["spec"]["parentRefs"][0]["name"] == profile.gateway_name
    assert profile.router is not None
    overlay = profile.router.modelserver_overlay.removeprefix("modelserver/").replace("/", "-")
    models = _rendered(f"modelserver/{overlay}.yaml")
    decode = models[("Deployment", profile.decode_deployment)]
    assert decode["spec"]["replicas"] == profile.decode_replicas
    labels = decode["spec"]["template"]["metadata"]["labels"]
    assert profile.decode_labels.items() <= labels.items()
    assert [c["name"] for c in decode["spec"]["template"]["spec"]["containers"]] == \
        list(profile.decode_containers)


def test_traffic_suites_report_an_unsupported_pair_as_not_supported(tmp_path: Path) -> None:
    """The ``stack`` fixture asks the matrix first: v0.3 has no standalone mode, so the
    inference suite reports not supported without touching a cluster (KUBECONFIG points
    nowhere) instead of erroring in the install."""
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "absent")}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/inference", "--target", "cluster",
         "--gateway", "standalone", "--guide-version", "v0.3", "--no-install", "-q", "-rs",
         "-p", "no:cacheprovider", "--report-dir", str(tmp_path / "reports")],
        cwd=repo_root(), env=env, capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "error" not in out.lower().split("short test summary")[-1], out
    assert "not supported: guide v0.3 has no standalone mode" in out


def test_a_pair_outside_the_matrix_has_no_stack(tmp_path: Path) -> None:
    """Negative control for the kwok check beside it: the cluster target's matrix reason is
    what the stack fixture reports."""
    from fixtures.options import HarnessOptions
    from fixtures.plugin import stack_unsupported_reason
    from fixtures.targets import make_target

    target = make_target(HarnessOptions(target="cluster", gateway="standalone",
                                        guide_version="v0.3", install=False), tmp_path)
    assert "no standalone mode" in (stack_unsupported_reason(target) or "")
