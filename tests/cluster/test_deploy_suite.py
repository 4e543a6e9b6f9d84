"""The deploy suite end to end: real client → emulated API, helm → recordings.

The current guide's standalone mode, healthy and with defects, runs on a real API server
(tests/kwok/test_verify_existing_install.py); here are what kwok cannot show: the helmfile-era
installs (their charts are not at hand offline), gateway mode (no Gateway controller writes
the Gateway, HTTPRoute and pool status) and ConfigMap defects the kwok test does not make."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.deploy_suite import SuiteRun, failed_tests

from .conftest import NAMESPACE, emulated_deploy_suite, require_guide_fixtures
from .emulator import Emulator
from .seed import CURRENT_NS, FAKE_HF_TOKEN, CurrentGuideSeed, GuideSeed


@pytest.mark.parametrize(("version", "gateway", "summary"),
                         [("v0.3", "gke", "18 passed, 2 skipped"),
                          ("v0.3", "istio", "18 passed, 2 skipped"),
                          ("v0.2", "istio", "17 passed, 3 skipped")])
def test_deploy_suite_passes_on_a_healthy_install(emulator: Emulator, tmp_path: Path,
                                                  version: str, gateway: str,
                                                  summary: str) -> None:
    """The current guide's standalone-Envoy and EPP-flag checks are not supported here, and
    v0.2 on istio renders no monitoring objects (so its CRD check is not supported)."""
    require_guide_fixtures(version)
    GuideSeed(emulator, version, gateway, NAMESPACE).seed()
    run = emulated_deploy_suite(emulator, tmp_path, version, gateway)
    assert run.rc == 0, run.output
    assert summary in run.output, run.output
    assert not (run.run_dir / "diagnostics").exists()


def test_seeded_defects_fail_the_matching_tests_with_diagnostics(emulator: Emulator,
                                                                 tmp_path: Path) -> None:
    require_guide_fixtures("v0.3")
    seed = GuideSeed(emulator, "v0.3", "istio", NAMESPACE).seed()
    pod = seed.break_pod_ready()
    seed.break_weights("prefix-cache-scorer", 5)
    seed.break_route_accepted()
    seed.break_gateway_class()
    seed.accept_pool_elsewhere()
    crd = emulator.find("CustomResourceDefinition", "podmonitors.monitoring.coreos.com")
    assert crd is not None
    emulator.remove(crd)
    run = emulated_deploy_suite(emulator, tmp_path, "v0.3", "istio")
    assert run.rc == 1, run.output
    assert failed_tests(run.output) == {
        "test_pods_ready_with_expected_containers[istio-decode]",
        "test_monitoring_crds_installed[istio]",
        "test_epp_config_plugins_and_weights[istio]",
        "test_httproute_accepted_and_resolved_refs[istio]",
        "test_gateway_programmed_with_address[istio]",
        "test_inferencepool_accepted_by_parent[istio]",
    }, run.output
    out = run.output
    assert f"Pod {NAMESPACE}/{pod}: conditions[Ready] is False" in out
    assert "status.containerStatuses[vllm].state.waiting.reason is CrashLoopBackOff" in out
    assert ("schedulingProfiles[default].plugins[prefix-cache-scorer].weight is 5, "
            "profile v0.3 expects 1") in out
    assert "CustomResourceDefinition podmonitors.monitoring.coreos.com: not installed" in out
    assert (f"HTTPRoute {NAMESPACE}/llm-d-inference-scheduling status.parents["
            "infra-inference-scheduling-inference-gateway]: conditions[Accepted] is False "
            "(reason NotAllowedByListeners") in out
    assert (f"Gateway {NAMESPACE}/infra-inference-scheduling-inference-gateway: "
            "spec.gatewayClassName is 'another-controller', expected 'istio'") in out
    assert (f"status.parent has no entry for Gateway {NAMESPACE}/infra-inference-scheduling-"
            "inference-gateway (entries: Gateway another-teams-gateway)") in out  # v1alpha2

    bundle = run.run_dir / "diagnostics" / "istio-main"
    for part in ("status/gateway.yaml", "status/httproute.yaml", "status/inferencepool.yaml",
                 "events.yaml", f"describe/{pod}.txt", f"logs/{pod}/vllm.log",
                 f"logs/{pod}/vllm.previous.log", "helm/gaie-inference-scheduling.status.txt",
                 "helm/ms-inference-scheduling.values.txt"):
        assert (bundle / part).is_file(), f"{part} missing from {sorted(bundle.rglob('*'))}"
    assert "NotAllowedByListeners" in (bundle / "status/httproute.yaml").read_text()
    assert not (bundle / "collect-errors.txt").exists()
    _assert_no_token(run.run_dir)
    assert emulator.secret_data_reads == [], "the HF secret is checked by metadata only"


def _assert_no_token(root: Path) -> None:
    import base64

    encoded = base64.b64encode(FAKE_HF_TOKEN.encode()).decode()
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert FAKE_HF_TOKEN not in text and encoded not in text, f"token leaked in {path}"


def test_route_in_another_namespace_is_named_as_the_known_defect(emulator: Emulator,
                                                             tmp_path: Path) -> None:
    """v0.2's route files hardcode a namespace other than the guide README's install one."""
    require_guide_fixtures("v0.2")
    seed = GuideSeed(emulator, "v0.2", "istio", NAMESPACE).seed()
    route = emulator.find("HTTPRoute", seed.profile.route_name, NAMESPACE)
    assert route is not None
    emulator.remove(route)
    emulator.put({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "llm-d-inference-scheduling"}})
    route["metadata"]["namespace"] = "llm-d-inference-scheduling"
    emulator.put(route)
    run = emulated_deploy_suite(emulator, tmp_path, "v0.2", "istio",
                           "-k", "namespace or resolved_refs")
    assert "test_httproute_in_install_namespace[istio]" in failed_tests(run.output), run.output
    assert ("found HTTPRoute llm-d-inference-scheduling/llm-d-inference-scheduling "
            "(known defect: the guide's httproute*.yaml hardcode") in run.output


# -- the current guide (optimized-baseline) -----------------------------------------------
def _run_current(emulator: Emulator, tmp_path: Path, seed: CurrentGuideSeed,
                 *extra: str) -> SuiteRun:
    mode = "standalone" if seed.provider.mode == "standalone" else "gateway"
    return emulated_deploy_suite(emulator, tmp_path, "current", seed.provider.name, *extra,
                            namespace=CURRENT_NS, recordings=f"current-{mode}")


@pytest.mark.parametrize("gateway", ["none", "gke", "istio", "agentgateway"])
def test_deploy_suite_passes_on_the_current_guide_gateway_mode(emulator: Emulator,
                                                               tmp_path: Path,
                                                               gateway: str) -> None:
    """Gateway mode per provider: the chart's HTTPRoute to the v1 pool, the provider's
    Gateway recipe; only the standalone Envoy and the monitoring CRDs are not supported."""
    require_guide_fixtures("current")
    seed = CurrentGuideSeed(emulator, gateway).seed()
    run = _run_current(emulator, tmp_path, seed, "-rs")
    assert run.rc == 0, run.output
    assert "18 passed, 2 skipped" in run.output, run.output
    assert "has no standalone Envoy: its proxy is a Gateway" in run.output


def test_envoy_config_that_bypasses_the_epp_fails(emulator: Emulator, tmp_path: Path) -> None:
    """Negative control: an Envoy ConfigMap without the ext_proc filter (requests would go
    nowhere near the EPP) fails the standalone proxy test."""
    require_guide_fixtures("current")
    seed = CurrentGuideSeed(emulator, "standalone").seed()
    cm = emulator.find("ConfigMap", "envoy", CURRENT_NS)
    assert cm is not None
    cm["data"]["envoy.yaml"] = cm["data"]["envoy.yaml"].replace(
        "envoy.filters.http.ext_proc", "envoy.filters.http.buffer")
    emulator.put(cm)
    run = _run_current(emulator, tmp_path, seed, "-k", "envoy_proxy")
    assert failed_tests(run.output) == {"test_standalone_envoy_proxy[standalone]"}, run.output
    assert "has no envoy.filters.http.ext_proc filter" in run.output


def test_epp_without_pool_discovery_fails(emulator: Emulator, tmp_path: Path) -> None:
    """Negative control: an EPP with no --pool-name discovers nothing the profile expects."""
    require_guide_fixtures("current")
    seed = CurrentGuideSeed(emulator, "gke").seed()
    dep = emulator.find("Deployment", seed.profile.epp_deployment, CURRENT_NS)
    assert dep is not None
    epp = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "epp")
    i = epp["args"].index("--pool-name")
    epp["args"] = epp["args"][:i] + epp["args"][i + 2:]
    emulator.put(dep)
    run = _run_current(emulator, tmp_path, seed, "-k", "discovery")
    assert failed_tests(run.output) == {"test_epp_discovery[gke]"}, run.output
    assert "the EPP discovers endpoints by nothing" in run.output


def test_unsupported_provider_of_the_current_guide_is_not_supported(emulator: Emulator,
                                                                    tmp_path: Path) -> None:
    """kgateway is not in the current guide's matrix: every test reports not supported,
    naming why; nothing errors."""
    run = emulated_deploy_suite(emulator, tmp_path, "current", "kgateway",
                           namespace=CURRENT_NS, recordings="current-gateway")
    assert run.rc == 0, run.output
    assert " error" not in run.output and "passed" not in run.output.split("\n")[-2]
    assert ("guide current has no kgateway provider in gateway mode (has none, gke, "
            "agentgateway, istio)") in run.output
