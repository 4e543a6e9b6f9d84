"""Verifying an existing install on a real API server: ``pytest suites/deploy --target cluster
--no-install``, the path a user takes against GKE, reads the current guide's standalone
objects as a kwok cluster has them (Deployments rolled out by the real controllers, pods made
Ready by the pod runner's probes, the guide's 8 decode replicas), and each defect made through
the API fails its own test and nothing else.

Gateway mode stays on the emulator (tests/cluster/test_deploy_suite.py): no Gateway
controller runs on kwok to write the Gateway, HTTPRoute and pool status it checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster.checks import deployment_problems
from fixtures.cluster.guide import GuideView
from fixtures.cluster.kube import RESOURCES
from fixtures.cluster.waits import wait_for
from fixtures.options import HarnessOptions
from fixtures.targets.kwok import KwokTarget
from tests.support.deploy_suite import (
    SuiteRun,
    failed_tests,
    not_supported_reasons,
    run_deploy_suite,
)
from tests.support.kwok_networks import worker_pod_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GUIDE_DECODE_REPLICAS = 8  # the rendered decode Deployment's own count: no deviation


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KwokTarget, GuideView]]:
    target = KwokTarget(HarnessOptions(target="kwok", guide_version="current",
                                       pods=GUIDE_DECODE_REPLICAS),
                        tmp_path_factory.mktemp("run"), pod_network=worker_pod_network())
    try:
        yield target, target.deploy()
    finally:
        target.down()


def _verify(install: tuple[KwokTarget, GuideView], tmp_path: Path, *extra: str) -> SuiteRun:
    target, view = install
    assert target.cluster is not None
    return run_deploy_suite(target.cluster.kubeconfig, tmp_path, "current", "standalone",
                            *extra, namespace=view.namespace, recordings="current-standalone")


def test_the_deploy_suite_passes_on_the_standalone_guide_as_the_api_server_has_it(
        install: tuple[KwokTarget, GuideView], tmp_path: Path) -> None:
    """Every check that standalone mode has passes; the Gateway API ones and the monitoring
    CRDs are not supported, each naming why."""
    run = _verify(install, tmp_path, "-rs")
    assert run.rc == 0, run.output
    assert "14 passed, 6 skipped" in run.output, run.output
    reasons = not_supported_reasons(run.output)
    assert sum("standalone mode has no Gateway, HTTPRoute or pool parent" in r
               for r in reasons) == 5, run.output
    assert sum("renders no monitoring objects" in r for r in reasons) == 1, run.output


def test_the_stacks_decode_pods_are_the_deployments_own_and_not_being_deleted(
        install: tuple[KwokTarget, GuideView]) -> None:
    """The guide's decode labels also match another overlay's pods in the namespace (here a
    CPU model server beside the GPU one), and a pod being deleted is still listed: the
    stack's pods are the decode Deployment's by its own selector, less those going away."""
    _, view = install
    kube, profile, pods = view.kube, view.profile, RESOURCES["Pod"]
    keep = {"finalizers": ["lamplighter.test/hold"]}  # deleted, it lingers as Terminating
    other = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "cpu-vllm-decode-0", "namespace": view.namespace, **keep,
        "labels": {**profile.decode_labels, "llm-d.ai/accelerator-variant": "cpu"}},
        "spec": {"containers": [{"name": "vllm", "image": "registry.invalid/cpu-vllm:1"}]}}
    kube.create(pods, other, view.namespace)
    leaving = view.decode_pods()[0]["metadata"]["name"]
    kube.patch(pods, leaving, {"metadata": keep}, view.namespace)
    kube.delete(pods, leaving, view.namespace)
    try:
        labelled = {p["metadata"]["name"] for p in view.pods(profile.decode_labels)}
        assert {"cpu-vllm-decode-0", leaving} <= labelled  # what a label query returns
        chosen = {p["metadata"]["name"] for p in view.decode_pods()}
        assert "cpu-vllm-decode-0" not in chosen and leaving not in chosen, chosen
    finally:
        for name in ("cpu-vllm-decode-0", leaving):
            kube.patch(pods, name, {"metadata": {"finalizers": None}}, view.namespace)
            kube.delete(pods, name, view.namespace)
    wait_for("the decode Deployment whole again", lambda: "; ".join(deployment_problems(
        view.deployment(profile.decode_deployment), profile.decode_deployment,
        GUIDE_DECODE_REPLICAS)) or None, timeout=60, interval=0.25, timeout_name="rollout")


def test_defects_made_through_the_api_fail_their_own_tests(
        install: tuple[KwokTarget, GuideView], tmp_path: Path) -> None:
    """Negative controls on real objects: a scorer weight changed in the EPP's ConfigMap, a
    log level changed and the Envoy container removed in the EPP Deployment (rolled out by
    the real controllers: a new EPP pod runs without Envoy) each fail their own tests, and
    only those; the failed run collects diagnostics. Last in the module: it leaves them."""
    _, view = install
    profile, kube = view.profile, view.kube
    configmap = kube.get(RESOURCES["ConfigMap"], profile.epp_configmap, view.namespace)
    assert configmap is not None
    text = configmap["data"][profile.epp_config_key]
    scorer = "- pluginRef: no-hit-lru-scorer\n    weight: 2"
    assert scorer in text
    kube.patch(RESOURCES["ConfigMap"], profile.epp_configmap,
               {"data": {profile.epp_config_key: text.replace(scorer, scorer[:-1] + "1")}},
               view.namespace)

    deployment = view.deployment(profile.epp_deployment)
    assert deployment is not None
    containers = deployment["spec"]["template"]["spec"]["containers"]
    index = {x["name"]: i for i, x in enumerate(containers)}
    c, a = index[profile.epp_container], containers[index[profile.epp_container]]["args"]
    assert profile.proxy is not None
    e = index[profile.proxy.container]
    kube.json_patch(RESOURCES["Deployment"], profile.epp_deployment, [
        {"op": "test", "path": f"/spec/template/spec/containers/{c}/name",
         "value": profile.epp_container},
        {"op": "replace", "path": f"/spec/template/spec/containers/{c}/args/"
         f"{a.index('--v=2')}", "value": "--v=1"},
        {"op": "test", "path": f"/spec/template/spec/containers/{e}/name",
         "value": profile.proxy.container},
        {"op": "remove", "path": f"/spec/template/spec/containers/{e}"}], view.namespace)
    wait_for("the EPP without its Envoy rolled out",
             lambda: "; ".join(deployment_problems(view.deployment(profile.epp_deployment),
                                                   profile.epp_deployment)) or None,
             timeout=60, interval=0.25, timeout_name="rollout")

    run = _verify(install, tmp_path)
    assert run.rc == 1, run.output
    assert failed_tests(run.output) == {
        "test_epp_config_plugins_and_weights[standalone]",
        "test_epp_flags[standalone]",
        "test_standalone_envoy_proxy[standalone]",
        "test_pods_ready_with_expected_containers[standalone-epp]",
    }, run.output
    assert ("schedulingProfiles[default].plugins[no-hit-lru-scorer].weight is 1, "
            "profile current expects 2") in run.output
    assert "--v is '1', profile current expects '2'" in run.output
    assert "no container 'envoy-proxy' (the standalone Envoy" in run.output
    configs = (run.run_dir / "diagnostics" / "standalone-main" / "status" /
               "epp-configmaps.yaml").read_text()
    assert "no-hit-lru-scorer" in configs and "envoy.filters.http.ext_proc" in configs
