"""The baseline's endpoints from a file (EDS): rendered, rewritten atomically, and followed by
the real Envoy the project runs when the file is replaced."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.envoy.binary import envoy_binary
from fixtures.envoy.config import BASELINE_CLUSTER, EnvoyGatewayConfig, render_baseline
from fixtures.envoy.endpoints import LOAD_ASSIGNMENT_TYPE, read_endpoints, write_endpoints
from fixtures.envoy.process import cluster_hosts, envoy_ready, start_envoy
from fixtures.ports import PortAllocator
from fixtures.processes import ProcessSupervisor
from tests.support.simulator_servers import InProcessServer, sim_config

pytestmark = pytest.mark.timeout(120)


def _baseline(endpoints: Path | None) -> dict[str, Any]:
    cfg = EnvoyGatewayConfig(gateway_port=1, baseline_port=2, admin_port=3, epp_address="",
                             pods=("127.0.0.1:5",), baseline_endpoints=endpoints)
    return next(c for c in render_baseline(cfg, 3)["static_resources"]["clusters"]
                if c["name"] == BASELINE_CLUSTER)


def test_the_baseline_reads_its_endpoints_from_the_file_when_given_one(tmp_path: Path) -> None:
    eds = _baseline(tmp_path / "endpoints.json")
    assert eds["type"] == "EDS" and "load_assignment" not in eds
    assert eds["eds_cluster_config"]["eds_config"] == {
        "path_config_source": {"path": str(tmp_path / "endpoints.json")},
        "resource_api_version": "V3"}
    assert eds["lb_policy"] == "ROUND_ROBIN"
    fixed = _baseline(None)  # the local target's: the pods it started, fixed
    assert fixed["type"] == "STATIC" and "eds_cluster_config" not in fixed
    assert fixed["lb_policy"] == "ROUND_ROBIN"


def test_the_endpoints_file_is_a_discovery_response_for_the_cluster(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    write_endpoints(path, "pods", ["127.1.0.3:8000", "127.1.0.4:8000"])
    response = json.loads(path.read_text())
    [assignment] = response["resources"]
    assert assignment["@type"] == LOAD_ASSIGNMENT_TYPE
    assert assignment["cluster_name"] == "pods"
    assert read_endpoints(path) == ["127.1.0.3:8000", "127.1.0.4:8000"]
    write_endpoints(path, "pods", [])  # a Service with no Ready pod: no endpoints, no error
    assert read_endpoints(path) == []


def test_a_rewrite_replaces_the_file_instead_of_editing_it(tmp_path: Path) -> None:
    """Envoy reloads on a move onto the path only: the old file (still open here, as Envoy may
    be reading it) keeps its content, and no temporary file stays behind."""
    path = tmp_path / "endpoints.json"
    write_endpoints(path, "pods", ["127.1.0.3:8000"])
    with path.open() as old:
        before = os.fstat(old.fileno()).st_ino
        write_endpoints(path, "pods", ["127.1.0.9:8000"])
        assert "127.1.0.3" in old.read()
    assert path.stat().st_ino != before
    assert read_endpoints(path) == ["127.1.0.9:8000"]
    assert [p.name for p in tmp_path.iterdir()] == ["endpoints.json"]


def test_a_failed_rewrite_keeps_the_old_file_and_leaves_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "endpoints.json"
    write_endpoints(path, "pods", ["127.1.0.3:8000"])

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_endpoints(path, "pods", ["127.1.0.9:8000"])
    assert read_endpoints(path) == ["127.1.0.3:8000"]
    assert [p.name for p in tmp_path.iterdir()] == ["endpoints.json"]


def test_a_malformed_address_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'127\.1\.0\.3': expected host:port"):
        write_endpoints(tmp_path / "endpoints.json", "pods", ["127.1.0.3"])
    assert not (tmp_path / "endpoints.json").exists()


def _served_by(url: str, count: int) -> list[str]:
    names = []
    for _ in range(count):
        reply = httpx.get(f"{url}/v1/models", timeout=5)
        assert reply.status_code == 200, reply.text
        names.append(reply.headers["x-inference-pod"])
    return names


def _eventually(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


@pytest.fixture
def pods() -> Iterator[tuple[InProcessServer, InProcessServer]]:
    with InProcessServer(replace(sim_config(), pod_name="pod-a")) as a, \
            InProcessServer(replace(sim_config(), pod_name="pod-b")) as b:
        yield a, b


def test_envoy_follows_the_file_when_it_is_replaced(
        tmp_path: Path, pods: tuple[InProcessServer, InProcessServer]) -> None:
    a, b = (server.url.removeprefix("http://") for server in pods)
    endpoints = tmp_path / "baseline" / "endpoints.json"
    write_endpoints(endpoints, BASELINE_CLUSTER, [a])
    with ProcessSupervisor(tmp_path / "logs") as supervisor, PortAllocator() as ports:
        port, admin = ports.reserve_many(2)
        admin_url = f"http://127.0.0.1:{admin}"
        start_envoy(supervisor, "envoy-baseline", envoy_binary(), render_baseline(
            EnvoyGatewayConfig(gateway_port=port, baseline_port=port, admin_port=admin,
                               epp_address="", pods=(a,), baseline_endpoints=endpoints),
            admin), tmp_path, envoy_ready(admin_url, {}), 30)
        url = f"http://127.0.0.1:{port}"
        assert set(_served_by(url, 4)) == {"pod-a"}

        write_endpoints(endpoints, BASELINE_CLUSTER, [b])  # pod-a replaced by pod-b
        _eventually("Envoy holds pod-b only",
                    lambda: cluster_hosts(admin_url, BASELINE_CLUSTER) == [b])
        assert set(_served_by(url, 4)) == {"pod-b"}

        write_endpoints(endpoints, BASELINE_CLUSTER, [a, b])
        _eventually("Envoy holds both", lambda: cluster_hosts(admin_url, BASELINE_CLUSTER)
                    == sorted([a, b]))
        # round robin per worker (2): of 4 requests some worker picks twice, so both answer
        assert set(_served_by(url, 4)) == {"pod-a", "pod-b"}

        write_endpoints(endpoints, BASELINE_CLUSTER, [])  # every pod gone: 503, as a Service
        _eventually("Envoy holds none", lambda: cluster_hosts(admin_url, BASELINE_CLUSTER) == [])
        assert httpx.get(f"{url}/v1/models", timeout=5).status_code == 503
