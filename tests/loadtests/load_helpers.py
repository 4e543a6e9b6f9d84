"""Helpers for load-test tests: loopback server processes, always reaped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadtests.api import wait_ready

ROOT = Path(__file__).resolve().parents[2]
SSE_SERVER = Path(__file__).with_name("sse_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]


@contextmanager
def serve(cmd: list[str], port: int, log: Path) -> Iterator[Server]:
    """Start ``cmd`` in its own session, wait for /health, kill the group on exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health", timeout_s=20)
        yield Server(url, proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def simulator_available() -> bool:
    return (ROOT / "simulator" / "__main__.py").exists() and (
        ROOT / "simulator" / "server.py"
    ).exists()
