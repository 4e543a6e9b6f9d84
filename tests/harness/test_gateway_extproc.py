"""The local gateway against a fake ext_proc EPP and fake pods: Envoy's behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from fixtures.gateway import BodyMode, FailureMode, GatewayConfig, build_app

from .fakes import FakeEpp, FakePod, start_epp, start_pod

pytestmark = pytest.mark.timeout(60)


@dataclass
class Rig:
    url: str
    pods: list[FakePod]
    addresses: list[str]
    epp: FakeEpp
    session: aiohttp.ClientSession


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def rig(
    epp: FakeEpp | None = None,
    config: GatewayConfig | None = None,
    epp_address: str | None = None,
) -> AsyncIterator[Rig]:
    """Two fake pods, the fake EPP (pointing at pod 0 unless told), and the gateway."""
    pods = [FakePod("pod-0"), FakePod("pod-1")]
    started = [await start_pod(p) for p in pods]
    addresses = [address for _, address in started]
    epp = epp or FakeEpp()
    epp.destination = epp.destination or addresses[0]
    server, address = await start_epp(epp)
    config = replace(config or GatewayConfig(endpoints=()), endpoints=tuple(addresses))
    if config.epp is None and epp_address is None:
        config = replace(config, epp=address)
    elif epp_address:
        config = replace(config, epp=epp_address)
    runner = web.AppRunner(build_app(config), handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            yield Rig(url, pods, addresses, epp, session)
    finally:
        for pod in pods:
            pod.release_last_chunk.set()
        await runner.cleanup()
        await server.stop(None)
        for pod_runner, _ in started:
            await pod_runner.cleanup()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


COMPLETION = {"model": "m", "prompt": "hello", "max_tokens": 4}


def test_full_duplex_routes_where_the_epp_says_and_uses_its_body() -> None:
    async def test() -> None:
        epp = FakeEpp(rewrite_model="rewritten")
        async with rig(epp) as r:
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION,
                                      headers={"x-request-id": "req-1"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["pod"] == "pod-0"
                assert resp.headers["x-gateway-destination-endpoint-served"] == r.addresses[0]
                assert resp.headers["x-went-into-resp-headers"] == "true"
            seen = epp.seen_request_headers[0]
            assert seen[":method"] == "POST" and seen[":path"] == "/v1/completions"
            assert seen[":authority"].startswith("127.0.0.1:")
            assert seen["content-type"] == "application/json"
            assert seen["x-request-id"] == "req-1"
            assert json.loads(epp.seen_request_bodies[0]) == COMPLETION
            upstream = r.pods[0].received[0]
            assert upstream["body"]["model"] == "rewritten"
            assert upstream["headers"]["x-epp-scheduled"] == "yes"
            assert epp.seen_served == [r.addresses[0]]
            assert not r.pods[1].received

    run(test)


def test_request_id_is_generated_when_absent() -> None:
    async def test() -> None:
        async with rig() as r:
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert resp.status == 200
            assert len(r.epp.seen_request_headers[0]["x-request-id"]) >= 32

    run(test)


def test_destination_from_envoy_lb_metadata_alone() -> None:
    async def test() -> None:
        epp = FakeEpp(destination_in_header=False)
        async with rig(epp) as r:
            epp.destination = r.addresses[1]
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert (await resp.json())["pod"] == "pod-1"

    run(test)


def test_fallback_list_skips_an_endpoint_that_refuses_connections() -> None:
    async def test() -> None:
        async with rig() as r:
            r.epp.destination = f"{_closed_port()},{r.addresses[1]}"
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert resp.status == 200
                assert (await resp.json())["pod"] == "pod-1"
                assert resp.headers["x-gateway-destination-endpoint-served"] == r.addresses[1]

    run(test)


def test_a_malformed_destination_is_skipped_for_the_next_in_the_list() -> None:
    async def test() -> None:
        async with rig() as r:
            r.epp.destination = f"not-an-endpoint,{r.addresses[1]}"
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert resp.status == 200
                assert (await resp.json())["pod"] == "pod-1"
            r.epp.destination = "not-an-endpoint"
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert resp.status == 503
                assert "'not-an-endpoint': not an ip:port" in await resp.text()

    run(test)


def test_immediate_response_reaches_the_client_unchanged() -> None:
    async def test() -> None:
        body = "inference error: ResourceExhausted - no capacity"
        async with rig(FakeEpp(immediate=(429, body))) as r:
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert resp.status == 429
                assert resp.headers["x-epp-error"] == "1"
                assert await resp.text() == body
            assert not r.pods[0].received and not r.pods[1].received

    run(test)


def test_fail_close_names_the_endpoint_picker() -> None:
    async def test() -> None:
        dead = _closed_port()
        config = GatewayConfig(endpoints=(), failure_mode=FailureMode.FAIL_CLOSE,
                               message_timeout=3)
        async with rig(config=config, epp_address=dead) as r, \
                r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
            assert resp.status == 503
            text = await resp.text()
            assert text.startswith(f"gateway: endpoint picker {dead} unavailable: ")

    run(test)


def test_fail_open_picks_a_pod_itself() -> None:
    async def test() -> None:
        config = GatewayConfig(endpoints=(), failure_mode=FailureMode.FAIL_OPEN,
                               message_timeout=3)
        async with rig(config=config, epp_address=_closed_port()) as r, \
                r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
            assert resp.status == 200
            assert (await resp.json())["model"] == "m"

    run(test)


def test_buffered_mode() -> None:
    async def test() -> None:
        epp = FakeEpp(buffered=True, rewrite_model="buffered")
        config = GatewayConfig(endpoints=(), body_mode=BodyMode.BUFFERED)
        async with rig(epp, config) as r:
            epp.destination = r.addresses[1]
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert resp.status == 200
                assert await resp.json() == {"pod": "pod-1", "model": "buffered"}
                assert resp.headers["x-went-into-resp-headers"] == "true"
            assert epp.headers_answered_before_body_end

    run(test)


@pytest.mark.parametrize("mode", [FailureMode.FAIL_OPEN, FailureMode.FAIL_CLOSE])
def test_buffered_epp_dying_on_the_response_body(mode: FailureMode) -> None:
    """FailOpen still delivers the body the gateway had read for the EPP; FailClose 503s."""
    async def test() -> None:
        epp = FakeEpp(buffered=True, abort_on_response_body=True)
        config = GatewayConfig(endpoints=(), body_mode=BodyMode.BUFFERED, failure_mode=mode)
        async with rig(epp, config) as r, \
                r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
            if mode is FailureMode.FAIL_OPEN:
                assert resp.status == 200
                assert await resp.json() == {"pod": "pod-0", "model": "m"}
            else:
                assert resp.status == 503
                assert "epp crashed" in await resp.text()

    run(test)


def test_headers_only_request() -> None:
    async def test() -> None:
        async with rig() as r:
            async with r.session.get(f"{r.url}/v1/models") as resp:
                assert resp.status == 200
                assert resp.headers["x-inference-pod"] == "pod-0"
            assert r.epp.seen_request_bodies == []

    run(test)


async def _first_chunk_before_last(r: Rig, pod: FakePod) -> None:
    """The client must get chunk 1 while the pod still holds back the last chunk."""
    async with r.session.post(f"{r.url}/v1/completions",
                              json={**COMPLETION, "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
        assert first == b'data: {"chunk": 1}\n\n'
        pod.release_last_chunk.set()
        assert await resp.content.read() == b"data: [DONE]\n\n"


def test_sse_passes_through_chunk_by_chunk_with_the_epp() -> None:
    async def test() -> None:
        async with rig() as r:
            await _first_chunk_before_last(r, r.pods[0])
            assert r.epp.seen_response_chunks[0] == b'data: {"chunk": 1}\n\n'

    run(test)


def test_upstream_breaking_mid_stream_cuts_the_client_without_waiting_for_the_epp() -> None:
    """The pump's failure interrupts the wait for the EPP's next body answer at once."""
    async def test() -> None:
        async with rig() as r:
            r.pods[0].break_after_first_chunk = True
            body = {**COMPLETION, "stream": True}
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(aiohttp.ClientPayloadError):
                async with r.session.post(f"{r.url}/v1/completions", json=body) as resp:
                    assert resp.status == 200
                    await resp.read()
            assert loop.time() - started < 5  # not the 120 s read timeout
            async with r.session.get(f"{r.url}/v1/models") as resp:  # still serving
                assert resp.status == 200

    run(test)


def test_server_timing_names_the_gateway_phases() -> None:
    async def test() -> None:
        async with rig() as r:
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as resp:
                assert resp.status == 200
                timing = resp.headers["server-timing"]
            assert [part.split(";")[0] for part in timing.split(", ")] == [
                "epp-req", "upstream", "epp-resp"]

    run(test)


def test_round_robin_alternates_and_streams() -> None:
    async def test() -> None:
        async with rig(epp_address="") as r:
            served = []
            for _ in range(4):
                async with r.session.get(f"{r.url}/v1/models") as resp:
                    served.append(resp.headers["x-inference-pod"])
            assert sorted(served) == ["pod-0", "pod-0", "pod-1", "pod-1"]
            assert served[0] != served[1]
            assert r.epp.seen_request_headers == []
            pod = r.pods[0] if served[-1] == "pod-1" else r.pods[1]
            await _first_chunk_before_last(r, pod)

    run(test)


def test_client_disconnect_mid_stream_leaves_the_gateway_serving() -> None:
    async def test() -> None:
        async with rig() as r:
            async with aiohttp.ClientSession() as other:
                resp = await other.post(f"{r.url}/v1/completions",
                                        json={**COMPLETION, "stream": True})
                await resp.content.readuntil(b"\n\n")
                resp.close()
            await asyncio.sleep(0.1)
            r.pods[0].release_last_chunk.set()
            async with r.session.post(f"{r.url}/v1/completions", json=COMPLETION) as ok:
                assert ok.status == 200

    run(test)
