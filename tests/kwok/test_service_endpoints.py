"""The follower that keeps the baseline's Envoy on its Service's Ready pods (no cluster: the
Service is a function here)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import pytest

from fixtures.cluster import TransientKubeError
from fixtures.kwok.service_endpoints import EndpointsFollower

A, B, C = "127.1.0.3:8000", "127.1.0.4:8000", "127.1.0.9:8000"


def _follower(found: list[Sequence[str] | Exception], published: list[tuple[str, ...]],
              interval: float = 0.01) -> EndpointsFollower:
    """Backends answer from ``found`` in turn (the last one repeats; an exception is raised)."""

    def backends() -> Sequence[str]:
        answer = found.pop(0) if len(found) > 1 else found[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    ticks = iter(range(100, 10_000))
    return EndpointsFollower(backends, lambda s: published.append(tuple(s)), (A, B),
                             interval=interval, clock=lambda: float(next(ticks)))


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.01)


def test_a_round_publishes_only_when_the_set_changes() -> None:
    published: list[tuple[str, ...]] = []
    follower = _follower([[B, A], [A, C], [C, A], []], published)
    assert follower.step() is False  # the same set in another order is no change
    assert follower.step() is True  # B replaced by C
    assert follower.step() is False
    assert follower.step() is True  # every pod gone: an empty set is published too
    assert published == [(A, C), ()]
    assert follower.current == ()
    assert follower.changes == [(100.0, (A, C)), (101.0, ())]  # the injected clock's times


def test_the_thread_follows_the_service_and_stops_with_the_target() -> None:
    published: list[tuple[str, ...]] = []
    follower = _follower([[A, B], [A, B], [A, C]], published)
    with follower:
        _eventually(lambda: published == [(A, C)])
        assert follower.running
    assert not follower.running


def test_a_failed_round_is_logged_once_and_the_next_rounds_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    published: list[tuple[str, ...]] = []
    down = TransientKubeError("GET /api/v1/namespaces/ns/pods: connection refused")
    follower = _follower([down, down, down, [A, C]], published)
    with caplog.at_level(logging.WARNING, "fixtures.kwok.service_endpoints"), follower:
        _eventually(lambda: published == [(A, C)])
    assert follower.failures == 3 and follower.last_failure is None  # recovered
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per new failure, not once per round
    assert "connection refused" in warnings[0].getMessage() and warnings[0].exc_info
