"""An asyncio event loop whose timers fire within microseconds, not whole milliseconds.

epoll waits in whole milliseconds (CPython rounds a timeout up, twice: a 58.5 ms wait can
become 60 ms), so a timer set for the end of a modelled step fires up to 1 ms late.
``PreciseEpollSelector`` waits in ``select()`` (microseconds) on the epoll descriptor itself,
which is readable as soon as any watched socket is, then collects the events from epoll
without waiting: the loop still wakes at once for I/O, no thread, no busy wait.
``new_event_loop`` builds a selector loop on it; ``is_precise`` tells the driver whether the
loop it runs on keeps sub-millisecond timers (if not, the driver finishes the last
sub-millisecond of each step with a short blocking sleep instead). ``loop_factory`` picks the
CLI's loop: uvloop when installed (measured faster), else this one.
"""

from __future__ import annotations

import asyncio
import select
import selectors
from collections.abc import Callable

__all__ = ["PreciseEpollSelector", "is_precise", "loop_factory", "new_event_loop"]

_FD_SETSIZE = 1024  # select() cannot watch descriptors at or above this


# epoll is Linux-only; elsewhere the class exists but is never used (see new_event_loop).
_Epoll = getattr(selectors, "EpollSelector", selectors.DefaultSelector)


class PreciseEpollSelector(_Epoll):  # type: ignore[valid-type,misc]
    """``EpollSelector`` whose ``select(timeout)`` keeps sub-millisecond timeouts."""

    def select(
        self, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        epfd = self.fileno()
        if timeout is None or timeout <= 0 or epfd >= _FD_SETSIZE:
            return super().select(timeout)
        # select() takes microseconds and the epoll descriptor is readable as soon as any
        # watched descriptor is ready; then collect the events without waiting.
        select.select([epfd], [], [], timeout)
        return super().select(0)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A selector event loop on ``PreciseEpollSelector`` (the default loop where epoll is
    unavailable)."""
    if not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(PreciseEpollSelector())


def loop_factory(choice: str = "auto") -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The CLI's loop: ``uvloop`` (``auto`` when importable: its C loop cuts the per-chunk
    cost, which shortens the request-to-first-token gap; its timers are whole milliseconds,
    so the driver ends steps with a short blocking sleep) or ``asyncio`` (the stdlib loop on
    ``PreciseEpollSelector``). Returns (name, factory)."""
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"unknown event loop {choice!r}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", new_event_loop


def is_precise(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` runs on a ``PreciseEpollSelector``."""
    return isinstance(getattr(loop, "_selector", None), PreciseEpollSelector)
