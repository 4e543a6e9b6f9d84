"""The thin asyncio shell that runs the engine on a real clock.

One task per process: call ``engine.step(now)``, wake the handlers whose requests emitted
tokens (first tokens first, so TTFT is not delayed by decode writes), then sleep until the
modelled end of the step just planned. Handlers' CPU work overlaps the modelled step time,
so the loop keeps to the model while that work fits in it (the step overrun shows when it
does not). With nothing to do the task waits on an event; ``submit`` sets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from simulator.engine import Engine, EngineRequest

__all__ = ["EngineDriver", "RequestHandle"]

log = logging.getLogger("simulator.driver")

_TAIL = 0.001  # epoll's timeout granularity (s)


class RequestHandle:
    """A handler's view of its request: await progress, read the emitted tokens."""

    __slots__ = ("_waiter", "req", "streaming")

    def __init__(self, req: EngineRequest, streaming: bool) -> None:
        self.req = req
        self.streaming = streaming  # False: woken only when the request ends
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


class EngineDriver:
    """Owns the engine loop task; handlers ``submit`` requests and ``abort`` them."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self._handles: dict[str, RequestHandle] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="engine-loop")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

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
                await self._wake.wait()
                continue
            try:
                outcome = engine.step(self.clock())
            except Exception:  # a bug must fail the requests, not stall them forever
                log.exception("engine step failed; aborting %d requests", len(handles))
                for rid in list(handles):
                    self.abort(rid)
                continue
            for req in outcome.emitted:
                handle = handles.get(req.request_id)
                if handle is not None and handle.streaming:
                    handle.notify()
            for req in outcome.finished:
                handle = handles.pop(req.request_id, None)
                if handle is not None:
                    handle.notify()
            if outcome.next_time is not None:
                await self._sleep_until(outcome.next_time)

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep to ``deadline``: on the loop until its last millisecond, then in the kernel.

        epoll rounds timeouts up to whole milliseconds, which alone would overrun every step
        by 0.5 ms on average; the sub-millisecond tail is slept with ``time.sleep`` (a
        nanosleep, not a busy loop), and only when the loop woke early, i.e. was idle.
        """
        remaining = deadline - self.clock()
        # Always yield first: the handlers woken by this step write their tokens now.
        await asyncio.sleep(remaining - _TAIL if remaining > _TAIL else 0)
        remaining = deadline - self.clock()
        if remaining > 0:
            time.sleep(remaining)
