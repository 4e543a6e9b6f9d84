"""The thin asyncio shell that runs the engine on a real clock.

One task per process: step the engine at ``now``, deliver the tokens it emitted, then sleep
until the modelled end of the step just planned. Handlers' CPU work overlaps the modelled
step time, so the loop keeps to the model while that work fits in it (the step overrun shows
when it does not). With nothing to do the task waits on an event; ``submit`` sets it.

Delivery is the hot path (one write per stream per step), so a streaming handler may attach
a ``sink`` to its handle: a plain function the driver calls for each step that emitted a
token of that request, which writes it straight to the socket. Only when the sink declines
(the request ended, or the socket's buffer is full) is the handler's task woken.

Order within a step: complete the step in flight (``Engine.finish_step``), deliver the first
tokens, plan the next step (``Engine.plan_step``), wake the handlers of finished requests,
then deliver the other tokens in slices of ``FANOUT_SLICE`` seconds with a pass of the event
loop between slices, so requests that arrive during a burst of writes are read (and their
arrival timestamped) without waiting for the whole burst. With ``manage_gc`` the cyclic
garbage collector runs next, then the task sleeps until the step's modelled end.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable

from simulator.engine import Engine, EngineRequest
from simulator.eventloop import is_precise

__all__ = ["FANOUT_SLICE", "EngineDriver", "RequestHandle"]

log = logging.getLogger("simulator.driver")

_TAIL = 0.001  # epoll's timeout granularity (s), on loops that are not precise
_SPIN = 0.0002  # on precise loops: wake this early (s) and spin to the step's end
FANOUT_SLICE = 0.0001  # s of token delivery between two passes of the event loop


class RequestHandle:
    """A handler's view of its request: await progress, read the emitted tokens.

    ``sink``, if set, is called by the driver (on the loop, synchronously) after each step
    that emitted a token of this request; it returns False to have the handler woken instead.
    """

    __slots__ = ("_waiter", "req", "sink", "streaming")

    def __init__(self, req: EngineRequest, streaming: bool) -> None:
        self.req = req
        self.streaming = streaming  # False: woken only when the request ends
        self.sink: Callable[[], bool] | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def wait(self, seen: int) -> None:
        """Return once more than ``seen`` tokens were emitted or the request ended."""
        req = self.req
        while req.num_output <= seen and not req.finished:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def notify(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def deliver(self) -> None:
        """Tokens were emitted: hand them to the sink, else wake the handler."""
        sink = self.sink
        if sink is None or not sink():
            self.notify()


class EngineDriver:
    """Owns the engine loop task; handlers ``submit`` requests and ``abort`` them."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self._handles: dict[str, RequestHandle] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._precise = False
        # Pace the cyclic garbage collector (process-wide, so the CLI opts in, not tests):
        # while the engine is busy, automatic collection is off and ``_collect_garbage``
        # runs it between steps, so a long pass (tens of ms with 1000 streams) does not land
        # on a step's end; when idle, automatic collection is back on.
        self.manage_gc = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._precise = is_precise(loop)
        self._task = loop.create_task(self._run(), name="engine-loop")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.manage_gc:
            gc.enable()

    def submit(self, req: EngineRequest, arrival: float, streaming: bool) -> RequestHandle:
        """Queue ``req`` (arrived at ``arrival`` on ``clock``); raises ValueError if it
        can never fit the KV pool."""
        self.engine.add_request(req, arrival)
        handle = self._handles[req.request_id] = RequestHandle(req, streaming)
        self._wake.set()
        return handle

    def abort(self, request_id: str) -> None:
        self.engine.abort(request_id)
        handle = self._handles.pop(request_id, None)
        if handle is not None:
            handle.notify()

    async def _run(self) -> None:
        engine = self.engine
        handles = self._handles
        while True:
            if not engine.busy:
                self._wake.clear()
                if self.manage_gc:
                    gc.enable()  # idle: the collector may run whenever it likes
                try:
                    await self._wake.wait()
                finally:
                    if self.manage_gc:
                        gc.disable()
                continue
            now = self.clock()
            try:
                outcome = engine.finish_step(now)
                # First tokens go out before the next step is planned: the server's TTFT
                # ends at ``now``, so planning must not delay what the client sees.
                self._deliver(outcome.emitted, 0, outcome.num_first)
                engine.plan_step(now, outcome)
            except Exception:  # a bug must fail the requests, not stall them forever
                log.exception("engine step failed; aborting %d requests", len(handles))
                for rid in list(handles):
                    self.abort(rid)
                continue
            for req in outcome.finished:
                handle = handles.pop(req.request_id, None)
                if handle is not None:
                    handle.notify()
            emitted = outcome.emitted
            i = outcome.num_first
            while i < len(emitted):
                if i > outcome.num_first:
                    await asyncio.sleep(0)  # let the loop read sockets between slices
                i = self._deliver(emitted, i, len(emitted), self.clock() + FANOUT_SLICE)
            if self.manage_gc:
                self._collect_garbage()
            if outcome.next_time is not None:
                await self._sleep_until(outcome.next_time)

    @staticmethod
    def _collect_garbage() -> None:
        """The cyclic collector's own schedule (gen0 after threshold0 net allocations, gen1
        every threshold1 gen0 passes, gen2 every threshold2 gen1 passes), run here, right
        after a step's tokens went out, instead of wherever an allocation trips it."""
        c0, c1, c2 = gc.get_count()
        t0, t1, t2 = gc.get_threshold()
        if t0 and c0 > t0:
            gc.collect(2 if c1 >= t1 and c2 >= t2 else 1 if c1 >= t1 else 0)

    def _deliver(
        self, emitted: list[EngineRequest], start: int, stop: int, until: float | None = None
    ) -> int:
        """Hand ``emitted[start:stop]`` to their handles, stopping early once the clock passes
        ``until`` (checked every few requests); returns the index reached."""
        handles = self._handles
        clock = self.clock
        i = start
        while i < stop:
            req = emitted[i]
            i += 1
            handle = handles.get(req.request_id)
            if handle is not None and handle.streaming:
                try:
                    handle.deliver()
                except Exception:  # a failing sink must not stop the engine loop
                    log.exception("delivering tokens of %s failed", req.request_id)
                    handle.sink = None
                    handle.notify()
            if until is not None and not i & 7 and clock() >= until:
                break
        return i

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep to ``deadline`` without holding up the handlers woken by this step.

        On a precise loop (``simulator.eventloop``) this is a timer and a short spin. Otherwise
        epoll's whole-millisecond timeouts alone would overrun every step by 0.5 ms on
        average, so the loop sleeps until the last millisecond and the rest is slept with
        ``time.sleep`` (a nanosleep, not a busy loop), only when the loop woke early, i.e.
        was idle.
        """
        remaining = deadline - self.clock()
        if self._precise:
            # Wake a little early (the loop needs a pass or two to resume this task), then
            # spin out the rest: at most _SPIN of busy wait per step, bounded in real time
            # too so an injected clock that stands still cannot hang the loop.
            await asyncio.sleep(remaining - _SPIN if remaining > _SPIN else 0)
            stop = time.perf_counter() + 2 * _SPIN
            while self.clock() < deadline and time.perf_counter() < stop:
                pass
            return
        # Always yield first: the handlers woken by this step write their tokens now.
        await asyncio.sleep(remaining - _TAIL if remaining > _TAIL else 0)
        remaining = deadline - self.clock()
        if remaining > 0:
            time.sleep(remaining)
