"""Run a simulator in-process (background thread + loop) or as the real CLI subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from fixtures.processes import stop_group
from simulator.config import EngineConfig, ServerConfig
from simulator.eventloop import new_event_loop
from simulator.server import SIM_KEY, Simulator, app_runner, build_app

__all__ = ["InProcessServer", "metric_value", "run_cli", "sim_config"]

FAST = dict(step_base_ms=10.0, prefill_ms_per_token=0.1, decode_ms_per_seq=0.1, time_scale=0.1)


def sim_config(**engine: object) -> ServerConfig:
    """A small, fast pod (time scaled 10x down) for API tests."""
    values: dict[str, object] = dict(model="sim-model", num_gpu_blocks=1024, **FAST)
    values.update(engine)
    return ServerConfig(engine=EngineConfig(**values), pod_name="pod-a",  # type: ignore[arg-type]
                        namespace="ns-a", host="127.0.0.1", port=0, enable_admin=True)


class InProcessServer:
    """The aiohttp app on an ephemeral loopback port, served from a daemon thread."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.url = ""
        self.sim: Simulator | None = None
        self._loop = new_event_loop()  # the CLI's loop (sub-millisecond timers)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        app = build_app(self.config)
        runner = app_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.sim = app[SIM_KEY]
        self.sim.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("simulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def metrics(self) -> dict[str, float]:
        return parse_metrics(httpx.get(self.url + "/metrics").text)


def parse_metrics(text: str) -> dict[str, float]:
    """Sample name (without labels, ``_bucket`` skipped) -> value, via prometheus_client."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith("_bucket"):
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def metric_value(server: InProcessServer, name: str) -> float:
    return server.metrics().get(name, 0.0)


@contextmanager
def run_cli(*args: str, timeout: float = 15.0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m simulator ARGS --port 0``; yields (process, base URL); always reaped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline, port = time.monotonic() + timeout, None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(0.2):
                line = proc.stderr.readline()
                m = re.search(r"simulator ready .* port=(\d+)", line)
                port = int(m.group(1)) if m else None
        if port is None:
            raise RuntimeError(f"simulator did not become ready (exit={proc.poll()})")
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc, grace=10.0)
        if proc.stderr is not None:
            proc.stderr.close()
