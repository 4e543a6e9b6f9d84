"""The streaming hot path: precise loop timers, the engine's two-half step, direct SSE sinks.

No timed assertions: these check what is delivered and in which order, not how fast.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
from typing import Any

import pytest

from simulator.config import EngineConfig
from simulator.driver import EngineDriver
from simulator.engine import Engine, EngineRequest, RequestStatus
from simulator.eventloop import PreciseEpollSelector, is_precise, loop_factory, new_event_loop
from simulator.protocol import ChunkTemplate
from simulator.server import SseSink
from tests.support.simulator_servers import InProcessServer, sim_config


def _req(rid: str, prompt: int = 40, out: int = 3) -> EngineRequest:
    return EngineRequest(rid, list(range(1, prompt + 1)), [7] * out, [f" w{i}" for i in range(out)])


# -- event loop ----------------------------------------------------------------------------


def test_precise_loop_runs_timers_and_wakes_for_io() -> None:
    loop = new_event_loop()
    try:
        assert is_precise(loop)
        a, b = socket.socketpair()
        a.setblocking(False)
        got: list[bytes] = []

        async def main() -> None:
            fired = loop.create_future()
            loop.call_later(0.0003, fired.set_result, "timer")  # sub-millisecond
            assert await fired == "timer"
            reader, _ = await asyncio.open_connection(sock=a)
            loop.call_later(0.0002, b.send, b"ping")
            got.append(await asyncio.wait_for(reader.read(4), 5))

        loop.run_until_complete(main())
        assert got == [b"ping"]
        b.close()
    finally:
        loop.close()
    plain = asyncio.new_event_loop()
    try:
        assert not is_precise(plain)
    finally:
        plain.close()


def test_precise_selector_returns_ready_keys() -> None:
    sel = PreciseEpollSelector()
    a, b = socket.socketpair()
    try:
        sel.register(a, 1)  # EVENT_READ
        assert sel.select(0.0005) == []  # times out with nothing ready
        b.send(b"x")
        ready = sel.select(5)
        assert [key.fileobj for key, _ in ready] == [a]
    finally:
        sel.close()
        a.close()
        b.close()


# -- engine: finish_step / plan_step --------------------------------------------------------


def _engine() -> Engine:
    return Engine(EngineConfig(num_gpu_blocks=256, max_num_seqs=8))


def test_two_halves_equal_one_step() -> None:
    whole, split = _engine(), _engine()
    for e in (whole, split):
        for i in range(3):
            e.add_request(_req(f"a{i}", out=4), 0.0)
    now = 0.0
    t1 = whole.step(now).next_time
    out = split.finish_step(now)
    split.plan_step(now, out)
    assert out.next_time == t1
    late_id = "late"
    while t1 is not None:
        now = t1
        if now > 0.015 and late_id:  # a newcomer whose first token lands beside decodes
            whole.add_request(_req(late_id), now)
            split.add_request(_req(late_id), now)
            late_id = ""
        a = whole.step(now)
        b = split.finish_step(now)
        firsts = [r.request_id for r in b.emitted]  # only prefill work is done so far
        assert all(r.num_output == 1 for r in b.emitted) and b.num_first == len(firsts)
        split.plan_step(now, b)
        assert [r.request_id for r in a.emitted] == [r.request_id for r in b.emitted]
        assert [r.request_id for r in b.emitted[: b.num_first]] == firsts
        assert [r.request_id for r in a.finished] == [r.request_id for r in b.finished]
        assert a.next_time == b.next_time
        t1 = a.next_time
    assert whole.stats.generation_tokens == split.stats.generation_tokens == 15
    assert whole.stats.itl.count == split.stats.itl.count


def test_plan_step_does_nothing_while_a_step_is_in_flight() -> None:
    e = _engine()
    e.add_request(_req("x"), 0.0)
    out = e.step(0.0)
    assert out.next_time is not None
    again = e.step_end
    e.plan_step(0.001, out)  # no finish_step first: the step in flight is untouched
    assert e.step_end == again and e.requests["x"].num_output == 0


# -- SSE sink ---------------------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self, buffered: int = 0, closing: bool = False) -> None:
        super().__init__()
        self.data = bytearray()
        self.buffered = buffered
        self.closing = closing

    def write(self, data: Any) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)


def _sink(transport: FakeTransport, out: int = 3) -> tuple[SseSink, EngineRequest]:
    req = _req("cmpl-1", out=out)
    req.status = RequestStatus.RUNNING
    return SseSink(req, ChunkTemplate("completion", "cmpl-1", 1, "m"), transport), req


def test_sink_writes_one_http_chunk_per_step() -> None:
    t = FakeTransport()
    sink, req = _sink(t)
    req.num_output = 2  # two tokens since the last delivery: one write, two events
    assert sink() is True and sink.sent == 2
    size, _, rest = bytes(t.data).partition(b"\r\n")
    body = rest[: int(size, 16)]
    assert rest[int(size, 16) :] == b"\r\n"
    events = [json.loads(e[len(b"data: ") :]) for e in body.split(b"\n\n") if e]
    assert [e["choices"][0]["text"] for e in events] == [" w0", " w1"]
    assert all(e["choices"][0]["finish_reason"] is None for e in events)


@pytest.mark.parametrize("case", ["finished", "backed_up", "closing"])
def test_sink_declines_so_the_handler_takes_over(case: str) -> None:
    t = FakeTransport(buffered=70000 if case == "backed_up" else 0, closing=case == "closing")
    sink, req = _sink(t)
    req.num_output = 1
    if case == "finished":
        req.status = RequestStatus.FINISHED
    assert sink() is False
    assert sink.sent == 0 and not t.data


def test_chunk_text_is_json_escaped() -> None:
    tpl = ChunkTemplate("chat", "c-1", 1, 'm"x')
    for text in ['"quoted"', "back\\slash", "naïve ☃", "\n"]:
        for _ in range(2):  # the second time from the cache
            event = json.loads(tpl.token(text)[len(b"data: ") :])
            assert event["choices"][0]["delta"]["content"] == text
            assert event["model"] == 'm"x'


# -- driver and server ------------------------------------------------------------------------


def test_driver_feeds_sinks_and_wakes_handlers_on_decline_and_error() -> None:
    async def main() -> None:
        engine = Engine(EngineConfig(num_gpu_blocks=256, step_base_ms=1.0, time_scale=0.1))
        driver = EngineDriver(engine)
        driver.start()
        calls: list[int] = []
        ok = driver.submit(_req("ok", out=5), driver.clock(), True)

        def record() -> bool:
            calls.append(ok.req.num_output)
            return not ok.req.finished

        ok.sink = record
        bad = driver.submit(_req("bad", out=5), driver.clock(), True)

        def boom() -> bool:
            raise RuntimeError("sink bug")

        bad.sink = boom
        while not ok.req.finished:
            await ok.wait(ok.req.num_output)
        await bad.wait(0)  # woken although its sink raised
        while not bad.req.finished:
            await bad.wait(bad.req.num_output)
        await driver.stop()
        assert calls == [1, 2, 3, 4]  # the last token is left to the handler
        assert bad.sink is None and bad.req.num_output == 5

    for loop in (new_event_loop(), asyncio.new_event_loop()):  # precise and plain
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()


def test_slow_reader_gets_the_whole_stream_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that does not read lets the socket back up; the handler drains, then the
    stream resumes, nothing lost or reordered."""
    backed_up: list[bool] = []
    real = SseSink.backed_up

    def spy(self: SseSink) -> bool:
        backed_up.append(real(self))
        return backed_up[-1]

    monkeypatch.setattr(SseSink, "backed_up", spy)
    real_init = SseSink.__init__

    def small_send_buffer(self: SseSink, *args: Any) -> None:
        real_init(self, *args)
        if self.transport is not None:  # so the backlog lands in the transport, not the kernel
            self.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    monkeypatch.setattr(SseSink, "__init__", small_send_buffer)
    n = 1500
    with InProcessServer(sim_config(time_scale=0.02)) as server:
        assert server.sim is not None
        engine = server.sim.engine
        host, port = server.url.rsplit("//", 1)[1].split(":")
        body = json.dumps({"model": "sim-model", "prompt": "slow reader", "max_tokens": n,
                           "stream": True, "ignore_eos": True}).encode()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect((host, int(port)))
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        while engine.stats.generation_tokens < n:  # all produced while we do not read
            time.sleep(0.05)
        assert any(backed_up)  # the sink saw the full buffer and left it to the handler
        sock.settimeout(10)
        data = bytearray()
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(1 << 16)
            assert chunk, "connection closed early"
            data += chunk
        sock.close()
    head, _, chunked = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    payload = bytearray()
    while chunked:
        size, _, rest = chunked.partition(b"\r\n")
        k = int(size, 16)
        payload += rest[:k]
        chunked = rest[k + 2 :]
    events = [e[len(b"data: ") :] for e in bytes(payload).split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    texts = [json.loads(e)["choices"][0]["text"] for e in events[:-1]]
    assert len(texts) == n
    finish = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-1]]
    assert finish[-1] == "length" and set(finish[:-1]) == {None}


def test_managed_gc_collects_between_steps_and_is_back_on_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collected: list[int] = []
    enabled_while_busy: list[bool] = []
    real_collect = gc.collect

    def collect(generation: int = 2) -> int:
        collected.append(generation)
        enabled_while_busy.append(gc.isenabled())
        return real_collect(generation)

    monkeypatch.setattr(gc, "collect", collect)
    thresholds = gc.get_threshold()
    gc.set_threshold(10, 2, 2)  # collect often, so a short run takes every generation
    was_enabled = gc.isenabled()

    async def main() -> None:
        engine = Engine(EngineConfig(num_gpu_blocks=256, step_base_ms=1.0, time_scale=0.1))
        driver = EngineDriver(engine)
        driver.manage_gc = True
        driver.start()
        await asyncio.sleep(0)  # the driver is idle, waiting for work
        handles = [driver.submit(_req(f"g{i}", out=30), driver.clock(), False)
                   for i in range(4)]
        kept: list[list[list[int]]] = []
        for h in handles:
            while not h.req.finished:
                kept.append([[j] for j in range(50)])  # net tracked allocations
                await h.wait(h.req.num_output)
        for _ in range(3):
            await asyncio.sleep(0)  # let the driver go idle
        assert gc.isenabled()
        await driver.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        gc.set_threshold(*thresholds)
        if was_enabled:
            gc.enable()
    assert {0, 1, 2} <= set(collected)
    assert not any(enabled_while_busy)  # automatic collection was off while stepping
    assert gc.isenabled() == was_enabled


def test_loop_factory_choices() -> None:
    name, factory = loop_factory("asyncio")
    loop = factory()
    try:
        assert name == "asyncio" and is_precise(loop)
    finally:
        loop.close()
    name, factory = loop_factory("auto")
    assert name in ("uvloop", "asyncio")
    loop = factory()
    loop.close()
    with pytest.raises(ValueError):
        loop_factory("tornado")
