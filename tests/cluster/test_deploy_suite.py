"""The deploy suite end to end: real client → emulated API, helm → recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import NAMESPACE, require_guide_fixtures, run_deploy_suite
from .emulator import Emulator
from .seed import FAKE_HF_TOKEN, GuideSeed


@pytest.mark.parametrize(("version", "gateway"),
                         [("v0.3", "gke"), ("v0.3", "istio"), ("v0.2", "istio")])
def test_deploy_suite_passes_on_a_healthy_install(emulator: Emulator, tmp_path: Path,
                                                  version: str, gateway: str) -> None:
    require_guide_fixtures(version)
    GuideSeed(emulator, version, gateway, NAMESPACE).seed()
    run = run_deploy_suite(emulator, tmp_path, version, gateway)
    assert run.rc == 0, run.output
    assert "17 passed" in run.output, run.output
    assert not (run.run_dir / "diagnostics").exists()


def _failed(output: str) -> set[str]:
    return {line.split("::")[1].split(" ")[0] for line in output.splitlines()
            if line.startswith("FAILED ")}


def test_seeded_defects_fail_the_matching_tests_with_diagnostics(emulator: Emulator,
                                                                 tmp_path: Path) -> None:
    require_guide_fixtures("v0.3")
    seed = GuideSeed(emulator, "v0.3", "istio", NAMESPACE).seed()
    pod = seed.break_pod_ready()
    seed.break_weights("prefix-cache-scorer", 5)
    seed.break_route_accepted()
    crd = emulator.find("CustomResourceDefinition", "podmonitors.monitoring.coreos.com")
    assert crd is not None
    emulator.remove(crd)
    run = run_deploy_suite(emulator, tmp_path, "v0.3", "istio")
    assert run.rc == 1, run.output
    assert _failed(run.output) == {
        "test_pods_ready_with_expected_containers[istio-decode]",
        "test_monitoring_crds_installed[istio]",
        "test_epp_config_plugins_and_weights[istio]",
        "test_httproute_accepted_and_resolved_refs[istio]",
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
    run = run_deploy_suite(emulator, tmp_path, "v0.2", "istio",
                           "-k", "namespace or resolved_refs")
    assert "test_httproute_in_install_namespace[istio]" in _failed(run.output), run.output
    assert ("found HTTPRoute llm-d-inference-scheduling/llm-d-inference-scheduling "
            "(known defect: the guide's httproute*.yaml hardcode") in run.output
