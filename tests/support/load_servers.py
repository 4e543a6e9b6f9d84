"""Helpers for load-test tests: loopback server processes, always reaped."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures.ports import PortAllocator
from fixtures.serving import Served

Server = Served  # what the fixtures yield: url, port, process

ROOT = Path(__file__).resolve().parents[2]
SSE_SERVER = Path(__file__).with_name("sse_server.py")


@contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port held for the block (no other test or stack takes it meanwhile)."""
    with PortAllocator() as ports:
        yield ports.reserve()


def sse_server_argv(*extra: str) -> Callable[[int], list[str]]:
    """Command line of the test SSE server on a given port."""
    return lambda port: [sys.executable, str(SSE_SERVER), "--port", str(port), *extra]


def simulator_available() -> bool:
    return (ROOT / "simulator" / "__main__.py").exists() and (
        ROOT / "simulator" / "server.py"
    ).exists()
