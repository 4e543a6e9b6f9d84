"""Reliability switches: forced errors, injected failures, readiness, hang, runtime config."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.simulator_servers import InProcessServer, sim_config

BODY = {"model": "sim-model", "prompt": "hello", "max_tokens": 2}


@pytest.fixture
def server() -> Iterator[InProcessServer]:
    with InProcessServer(sim_config()) as s:
        yield s


@pytest.mark.parametrize(("value", "status"), [("429", 429), ("503", 503), ("500", 500),
                                               ("400", 400), ("rate_limit", 429)])
def test_force_error_header_fails_one_request(
    server: InProcessServer, value: str, status: int
) -> None:
    r = httpx.post(server.url + "/v1/completions", json=BODY,
                   headers={"x-sim-force-error": value})
    assert r.status_code == status and r.json()["error"]["code"] == status
    assert r.headers["x-inference-pod"] == "pod-a"
    assert httpx.post(server.url + "/v1/completions", json=BODY).status_code == 200


def test_failure_rate_one_fails_everything_with_configured_types(server: InProcessServer) -> None:
    cfg = httpx.post(server.url + "/admin/config",
                     json={"failure_rate": 1.0, "failure_types": ["rate_limit"]})
    assert cfg.status_code == 200
    statuses = {httpx.post(server.url + "/v1/completions", json=BODY).status_code
                for _ in range(5)}
    assert statuses == {429}
    httpx.post(server.url + "/admin/config", json={"failure_rate": 0})
    assert httpx.post(server.url + "/v1/completions", json=BODY).status_code == 200


def test_admin_health_fails_readiness(server: InProcessServer) -> None:
    assert httpx.post(server.url + "/admin/health", json={"ready": False}).status_code == 200
    r = httpx.get(server.url + "/health")
    assert r.status_code == 503 and r.headers["x-inference-pod"] == "pod-a"
    httpx.post(server.url + "/admin/health", json={"ready": True})
    assert httpx.get(server.url + "/health").status_code == 200


def test_hang_holds_requests_until_released(server: InProcessServer) -> None:
    httpx.post(server.url + "/admin/hang", json={"enabled": True})
    with cf.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(httpx.post, server.url + "/v1/completions", json=BODY, timeout=20)
        time.sleep(0.3)
        assert not fut.done()
        with pytest.raises(httpx.ReadTimeout):  # a client that gives up is simply dropped
            httpx.post(server.url + "/v1/completions", json=BODY, timeout=0.2)
        httpx.post(server.url + "/admin/hang", json={"enabled": False})
        assert fut.result(10).status_code == 200
    assert httpx.get(server.url + "/health").status_code == 200


def test_admin_config_changes_step_time(server: InProcessServer) -> None:
    r = httpx.post(server.url + "/admin/config", json={"speed_factor": 3.0})
    assert r.json()["speed_factor"] == 3.0
    assert server.sim is not None
    assert server.sim.engine.config.step_seconds(0, 1) == pytest.approx(3 * 10.1 * 0.1 / 1000)
    bad = httpx.post(server.url + "/admin/config", json={"speed_factor": -1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "speed_factor"
    assert httpx.post(server.url + "/admin/config", json={"nope": 1}).status_code == 400


def test_admin_routes_and_the_force_error_header_are_off_by_default() -> None:
    config = sim_config()
    config.enable_admin = False
    with InProcessServer(config) as server:
        body = {"model": "sim-model", "prompt": "hello there", "max_tokens": 2}
        forced = httpx.post(server.url + "/v1/completions", json=body,
                            headers={"x-sim-force-error": "503"}, timeout=10)
        assert forced.status_code == 200, "the fault header must be ignored without admin"
        for method, path in (("GET", "/admin/config"), ("POST", "/admin/health"),
                             ("POST", "/admin/hang"), ("GET", "/admin/stats")):
            reply = httpx.request(method, server.url + path, json={}, timeout=10)
            assert reply.status_code in (404, 405), f"{method} {path}: {reply.status_code}"


def test_enable_admin_flag_and_env_turn_admin_on() -> None:
    from simulator.__main__ import parse_args

    assert parse_args(["--enable-admin"]).enable_admin is True
    assert parse_args([]).enable_admin is False
