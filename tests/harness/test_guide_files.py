"""The no-Kubernetes guide's own envoy.yaml and EPP config, run as shipped on the local stack."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fixtures.guide_files import (
    GuideFilesError,
    GuideRouterFiles,
    rewrite_envoy,
    rewrite_epp_config,
)
from fixtures.localstack import LocalStack, LocalStackConfig
from fixtures.serving import REPO_ROOT, repo_env
from scheduler_ref.config import load_config

GUIDE = Path(__file__).resolve().parents[1] / "data" / "guide" / "current" / "no-kubernetes"
EPP = "127.0.0.1:40002"


def _files() -> GuideRouterFiles:
    return GuideRouterFiles.find(GUIDE)


def _rewritten_envoy() -> tuple[dict[str, Any], dict[str, Any], list[Any], str]:
    files = _files()
    doc = copy.deepcopy(files.envoy)
    cluster, rewrites = rewrite_envoy(doc, "envoy.yaml", host="127.0.0.1", gateway_port=40001,
                                      admin_port=40000, epp_address=EPP)
    return files.envoy, doc, rewrites, cluster


def _without(doc: Any, keys: tuple[str, ...] = ("address", "port_value", "authority")) -> Any:
    """The document with every rewritable value blanked: what must stay byte-equal."""
    if isinstance(doc, dict):
        return {k: None if k in keys else _without(v, keys) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_without(v, keys) for v in doc]
    return doc


def test_only_addresses_and_ports_of_the_guides_envoy_yaml_change() -> None:
    original, doc, rewrites, cluster = _rewritten_envoy()
    assert cluster == "ext_proc"
    assert _without(doc) == _without(original)
    assert {(r.where, r.old, r.new) for r in rewrites} == {
        ("admin.address.socket_address", "127.0.0.1:19000", "127.0.0.1:40000"),
        ("static_resources.listeners[0].address.socket_address", "0.0.0.0:8081",
         "127.0.0.1:40001"),
        ("static_resources.listeners[0].filter_chains[0].filters[0].typed_config."
         "http_filters[0].typed_config.grpc_service.envoy_grpc.authority", "localhost:9002", EPP),
        ("static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint."
         "address.socket_address", "127.0.0.1:9002", EPP),
    }


def test_only_the_endpoints_path_of_the_guides_epp_config_changes(tmp_path: Path) -> None:
    files = _files()
    doc = copy.deepcopy(files.epp_config)
    (rewrite,) = rewrite_epp_config(doc, "config.yaml", tmp_path / "endpoints.yaml")
    assert (rewrite.where, rewrite.old) == ("plugins[0].parameters.path",
                                            "/etc/epp/endpoints.yaml")
    assert _without(doc, ("path",)) == _without(files.epp_config, ("path",))
    # scheduler_ref reads the result as the guide's plugin set
    cfg = load_config(yaml.safe_dump(doc), "config.yaml")
    assert cfg.data_layer.discovery is not None
    assert cfg.data_layer.discovery.path == str(tmp_path / "endpoints.yaml")


def test_an_envoy_yaml_still_reaching_off_loopback_is_refused_naming_the_field() -> None:
    doc = copy.deepcopy(_files().envoy)
    doc["static_resources"]["clusters"].append({"name": "elsewhere", "load_assignment": {
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "10.1.2.3", "port_value": 80}}}}]}]}})
    with pytest.raises(GuideFilesError, match=r"clusters\[2\].*10\.1\.2\.3 is not on loopback"):
        rewrite_envoy(doc, "envoy.yaml", host="127.0.0.1", gateway_port=1, admin_port=2,
                      epp_address=EPP)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["static_resources"]["listeners"].append({}), "expected one listener"),
    (lambda d: d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
     ["typed_config"]["http_filters"].pop(0), "no envoy.filters.http.ext_proc filter"),
    (lambda d: d["static_resources"]["clusters"].pop(1), "no cluster named 'ext_proc'"),
    (lambda d: d.pop("admin"), "admin: missing"),
])
def test_an_envoy_yaml_of_another_shape_is_a_one_line_error(change: Any, message: str) -> None:
    doc = copy.deepcopy(_files().envoy)
    change(doc)
    with pytest.raises(GuideFilesError, match=message):
        rewrite_envoy(doc, "envoy.yaml", host="127.0.0.1", gateway_port=1, admin_port=2,
                      epp_address=EPP)


def test_a_guide_dir_without_router_files_names_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(GuideFilesError, match=r"router/envoy/envoy\.yaml"):
        GuideRouterFiles.find(tmp_path)


def test_the_guide_files_rule_out_the_upstream_epp_and_tls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--scheduler llm-d.*file-discovery"):
        LocalStack(LocalStackConfig(log_dir=tmp_path, guide_dir=GUIDE, scheduler="llm-d"))
    with pytest.raises(ValueError, match=r"--epp-tls.*plaintext"):
        LocalStack(LocalStackConfig(log_dir=tmp_path, guide_dir=GUIDE, epp_tls=True))


def test_lamplighter_up_with_a_guide_dir_lacking_files_exits_2_before_starting(
        tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fixtures.cli", "up", "--guide-dir", str(tmp_path),
         "--stack-file", str(tmp_path / "stack.json"), "--log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, cwd=REPO_ROOT, env=repo_env(), timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no no-Kubernetes router files" in done.stderr
    assert not (tmp_path / "stack.json").exists()


@pytest.fixture(scope="module")
def guide_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(LocalStackConfig(log_dir=tmp_path_factory.mktemp("guide"), pods=3,
                                        guide_dir=GUIDE))
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.mark.timeout(120)
def test_the_guides_own_files_route_a_shared_prefix_to_one_pod(guide_stack: LocalStack) -> None:
    stack = guide_stack.stack
    assert stack is not None
    files = stack.extras["guide_files"]
    assert files["envoy"] == str(GUIDE / "envoy.yaml")
    assert len(files["rewrites"]) == 5  # admin, listener, authority, EPP endpoint, path
    assert "no-hit-lru-scorer" in (stack.scheduler_config or "")
    prefix = "You are a careful assistant who answers in one line. " * 12
    pods: Counter[str] = Counter()
    for i in range(8):
        reply = httpx.post(f"{stack.gateway_url}/v1/completions", timeout=30, json={
            "model": stack.model, "prompt": f"{prefix} question {i}", "max_tokens": 4})
        assert reply.status_code == 200, reply.text
        pods[reply.headers["x-inference-pod"]] += 1
    assert len(pods) == 1, f"one shared prefix went to {dict(pods)}"
    baseline = Counter(httpx.post(f"{stack.baseline_url}/v1/completions", timeout=30, json={
        "model": stack.model, "prompt": prefix, "max_tokens": 4}).headers["x-inference-pod"]
        for _ in range(9))
    assert len(baseline) == 3, f"the round-robin baseline served {dict(baseline)}"
