"""How the kwok pod runner runs the guide's own containers: the chart's Envoy bootstrap moved
to the pod's IP, the EPP's flags handed to its stand-in with paths through the pod's volumes,
and the rendered objects applied in an order that lets every pod start."""

from __future__ import annotations

import unittest.mock
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cluster.paths import guide_fixture_dir
from fixtures.guide_files import GuideFilesError, rewrite_pod_local
from fixtures.kwok.guide_install import APPLY_ORDER, RenderedGuide, rendered_objects
from fixtures.kwok.images import STAND_INS, stage_values
from fixtures.kwok.launchers import (
    envoy_launcher,
    epp_launcher,
    flag_value,
    launcher_table,
    shift_epp_ports,
)
from fixtures.kwok.pod_runner import RunnablePod
from fixtures.kwok.probes import probe_check
from fixtures.localstack import SimulatorParams

POD_IP = "127.1.0.9"
GUIDE = guide_fixture_dir("current")
NAMESPACE = "llm-d-optimized-baseline"


def _router_objects() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((GUIDE / "standalone" / "router.yaml").read_text())
            if d]


def _epp_pod(tmp_path: Path) -> RunnablePod:
    """The chart's EPP pod as the runner sees it, its ConfigMap volumes written out."""
    objects = _router_objects()
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = {"metadata": {"namespace": NAMESPACE, "name": "epp-0", "uid": "u"},
           "spec": deployment["spec"]["template"]["spec"], "status": {"podIP": POD_IP}}
    runnable = RunnablePod.from_pod(pod)
    dirs = {}
    for volume, (name, items) in runnable.config_volumes.items():
        data = next(o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == name)["data"]
        dirs[volume] = tmp_path / volume
        dirs[volume].mkdir()
        for key, path in items or tuple((k, k) for k in data):
            (dirs[volume] / path).write_text(data[key])
    return RunnablePod(runnable.namespace, runnable.name, runnable.uid, runnable.ip,
                       runnable.service_account, runnable.containers, runnable.config_volumes,
                       dirs)


def test_the_charts_envoy_runs_on_the_pod_ip_with_its_own_listeners(tmp_path: Path) -> None:
    pod = _epp_pod(tmp_path)
    envoy = next(c for c in pod.containers if c.name == "envoy-proxy")
    launch = envoy_launcher(tmp_path / "out")(pod, envoy)
    config = Path(launch.argv[launch.argv.index("-c") + 1])
    doc = yaml.safe_load(config.read_text())
    listeners = {(ls["address"]["socket_address"]["address"],
                  ls["address"]["socket_address"]["port_value"])
                 for ls in doc["static_resources"]["listeners"]}
    assert listeners == {(POD_IP, 8081), (POD_IP, 19001)}  # the chart's ports, on the pod IP
    ext_proc = next(c for c in doc["static_resources"]["clusters"] if c["name"] == "ext_proc")
    endpoint = ext_proc["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": POD_IP, "port_value": 9002}
    assert "transport_socket" in ext_proc  # the chart's TLS to the EPP is kept
    assert launch.argv.count("--concurrency") == 1 and "8" not in launch.argv
    assert any("--concurrency 8 -> 2" in note for note in launch.notes)
    assert any("127.0.0.1:9002" in note and f"{POD_IP}:9002" in note for note in launch.notes)


def test_an_address_off_loopback_stays_refused_after_the_pod_rewrite() -> None:
    doc = {"static_resources": {"clusters": [{"load_assignment": {"endpoints": [{
        "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "10.0.0.7", "port_value": 80}}}}]}]}}]}}
    with pytest.raises(GuideFilesError, match=r"10\.0\.0\.7 is not on loopback"):
        rewrite_pod_local(doc, "envoy.yaml", POD_IP)


def test_scheduler_ref_takes_the_epps_flags_with_paths_through_the_volume(
        tmp_path: Path) -> None:
    pod = _epp_pod(tmp_path)
    epp = next(c for c in pod.containers if c.name == "epp")
    kubeconfig = tmp_path / "sa.kubeconfig"
    launch = epp_launcher("ref", lambda _: kubeconfig)(pod, epp)
    argv = launch.argv
    assert argv[1:3] == ["-m", "scheduler_ref"]
    config = flag_value(argv, "--config-file")
    assert config == str(tmp_path / "plugins-config-volume" / "optimized-baseline-plugins.yaml")
    assert "no-hit-lru-scorer" in Path(config).read_text()
    assert flag_value(argv, "--pool-name") == "optimized-baseline"
    assert flag_value(argv, "--pool-namespace") == NAMESPACE
    assert flag_value(argv, "--grpc-health-port") == "9003"
    assert flag_value(argv, "--host") == POD_IP
    assert flag_value(argv, "--kubeconfig") == str(kubeconfig)


def test_a_path_outside_every_mounted_volume_is_refused_by_name(tmp_path: Path) -> None:
    pod = _epp_pod(tmp_path)
    epp = next(c for c in pod.containers if c.name == "epp")
    with pytest.raises(ValueError, match=r"container 'epp' reads /etc/other.yaml"):
        pod.host_path(epp, "/etc/other.yaml")


def test_every_stand_in_image_has_a_launcher_and_a_stage_spelling(tmp_path: Path) -> None:
    table = launcher_table(SimulatorParams(), "ref", lambda _: tmp_path, tmp_path)
    assert set(table) == set(STAND_INS)
    values = stage_values(STAND_INS)
    assert "docker.io/envoyproxy/envoy" in values and "envoyproxy/envoy" in values
    assert "docker.io/ghcr.io/llm-d/llm-d-cpu" not in values  # a registry is never prefixed


def test_rendered_objects_apply_dependencies_first_and_record_the_replica_change() -> None:
    rendered = RenderedGuide.find(GUIDE)
    assert rendered.namespace() == NAMESPACE
    objects, deviations = rendered_objects(
        rendered, NAMESPACE, "optimized-baseline-nvidia-gpu-vllm-decode", 3)
    kinds = [o["kind"] for o in objects]
    assert kinds == sorted(kinds, key=APPLY_ORDER.index)
    assert kinds[-2:] == ["Deployment", "Deployment"]  # pods only once config and RBAC exist
    decode = next(o for o in objects
                  if o["metadata"]["name"] == "optimized-baseline-nvidia-gpu-vllm-decode")
    assert decode["spec"]["replicas"] == 3
    assert deviations == ["Deployment optimized-baseline-nvidia-gpu-vllm-decode: spec.replicas "
                          "8 -> 3 (--pods: simulators this machine runs)"]


def test_a_render_for_another_namespace_is_refused_naming_the_object() -> None:
    with pytest.raises(ValueError, match=r"ServiceAccount optimized-baseline-epp: "
                                         r"metadata.namespace 'llm-d-optimized-baseline'"):
        rendered_objects(RenderedGuide.find(GUIDE), "elsewhere", "x", 1)


def test_a_missing_render_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"standalone/router.yaml"):
        RenderedGuide.find(tmp_path)


def test_the_upstream_epp_gets_the_routers_config_minus_what_gaie_lacks(tmp_path: Path) -> None:
    pod = _epp_pod(tmp_path)
    epp = next(c for c in pod.containers if c.name == "epp")
    launch = epp_launcher("llm-d", lambda _: tmp_path / "sa.kubeconfig")(pod, epp)
    config = yaml.safe_load(Path(str(flag_value(launch.argv, "--config-file"))).read_text())
    assert config["apiVersion"] == "inference.networking.x-k8s.io/v1alpha1"
    assert [p["type"] for p in config["plugins"]] == [
        "queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer"]
    assert {p["pluginRef"]: p["weight"] for p in config["schedulingProfiles"][0]["plugins"]} \
        == {"queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
    assert any("no-hit-lru-scorer dropped" in note for note in launch.notes)
    assert "--health-checking=true" in launch.argv
    assert launch.env is not None and launch.env["KUBECONFIG"] == str(tmp_path / "sa.kubeconfig")


def test_a_shifted_epp_listens_elsewhere_and_its_pods_envoy_and_probe_follow(
        tmp_path: Path) -> None:
    """Two kwok clusters on one host: GAIE's EPP binds every interface, so the second one's
    EPP takes the chart's ports + 100; the pod's Envoy must ask it there and the pod's
    readinessProbe (grpc 9003) must probe it there, or the pod never becomes Ready."""
    pod = _epp_pod(tmp_path)
    epp = next(c for c in pod.containers if c.name == "epp")
    envoy = next(c for c in pod.containers if c.name == "envoy-proxy")
    launch = epp_launcher("llm-d", lambda _: tmp_path / "sa.kubeconfig", port_shift=100)(pod, epp)
    assert [flag_value(launch.argv, f) for f in
            ("--grpc-port", "--grpc-health-port", "--metrics-port")] == ["9102", "9103", "9190"]
    assert launch.moved_ports == {9002: 9102, 9003: 9103, 9090: 9190}
    assert any("ports 9002, 9003, 9090 -> 9102, 9103, 9190" in n for n in launch.notes)

    proxy = envoy_launcher(tmp_path / "out", epp_port_shift=100)(pod, envoy)
    doc = yaml.safe_load(Path(proxy.argv[proxy.argv.index("-c") + 1]).read_text())
    sockets = {(s["address"], s["port_value"]) for s in _sockets(doc)}
    assert (POD_IP, 9102) in sockets and (POD_IP, 9002) not in sockets
    assert (POD_IP, 8081) in sockets  # the proxy's own listener stays on the chart's port

    asked: list[str] = []

    def serving(address: str, *_: object) -> bool:
        asked.append(address)
        return True

    probed = probe_check(epp.readiness or {}, POD_IP, epp.ports, "probe", launch.moved_ports)
    with unittest.mock.patch("fixtures.kwok.probes.grpc_serving", serving):
        assert probed()
    assert asked == [f"{POD_IP}:9103"]


def test_without_a_shift_the_epp_keeps_the_charts_ports(tmp_path: Path) -> None:
    pod = _epp_pod(tmp_path)
    epp = next(c for c in pod.containers if c.name == "epp")
    launch = epp_launcher("llm-d", lambda _: tmp_path / "sa.kubeconfig")(pod, epp)
    assert launch.moved_ports == {}
    assert flag_value(launch.argv, "--grpc-port") in (None, "9002")


@pytest.mark.parametrize("args", [
    ["--pool-name", "p", "--grpc-port", "9002", "--metrics-port=9090"],
    ["--pool-name", "p"],
])
def test_shifting_epp_ports_sets_every_port_flag_once(args: list[str]) -> None:
    shifted = shift_epp_ports(args, 1000)
    assert shifted[:2] == ["--pool-name", "p"]
    assert sorted(shifted[2:]) == ["--grpc-health-port=10003", "--grpc-port=10002",
                                   "--metrics-port=10090"]


def _sockets(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node["socket_address"]] if isinstance(node.get("socket_address"), dict) else []
        return found + [s for v in node.values() for s in _sockets(v)]
    if isinstance(node, list):
        return [s for v in node for s in _sockets(v)]
    return []
