"""Shared helpers for the scheduler_ref tests (imported by module name; no package here)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from fixtures.processes import stop_group
from fixtures.threaded_app import ThreadedApp
from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.types import Endpoint, LLMRequest

NOW = 1000.0
ROOT = Path(__file__).resolve().parents[2]
CMD = [sys.executable, "-m", "scheduler_ref"]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for flags and configs that must make it exit)."""
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def endpoint(i: int, **metrics: Any) -> Endpoint:
    metrics.setdefault("metrics_time", NOW)
    return Endpoint(key=f"10.0.0.{i}:8000", name=f"pod-{i}", **metrics)


def endpoints(n: int, **metrics: Any) -> list[Endpoint]:
    return [endpoint(i, **metrics) for i in range(1, n + 1)]


def request(prompt: str, model: str = "m", rid: str = "r", **kw: Any) -> LLMRequest:
    return LLMRequest(request_id=rid, model=model, prompt=prompt, **kw)


def scheduler(text: str = DEFAULT_CONFIG, seed: int = 7, staleness: float = 2.0) -> Scheduler:
    return Scheduler(load_config(text), staleness=staleness, rng=random.Random(seed))


# -- a fake vLLM /metrics endpoint (the model-server seam) ------------------------------------


class FakeMetricsServer(ThreadedApp):
    """Serves vLLM-style gauges on 127.0.0.1 from a background thread; tests set ``gauges``."""

    def __init__(self, waiting: float = 0, running: float = 0, kv: float = 0.1) -> None:
        super().__init__(self._app)
        self.gauges = {"waiting": waiting, "running": running, "kv": kv}
        self.fail = False

    def _page(self) -> str:
        g = self.gauges
        return (
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="m"}} {g["waiting"]}\n'
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="m"}} {g["running"]}\n'
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f'vllm:kv_cache_usage_perc{{model_name="m"}} {g["kv"]}\n'
        )

    async def _handle(self, _: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=500)
        return web.Response(text=self._page())

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        return app

    @property
    def key(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def running(*args: str) -> Iterator[tuple[dict[str, object], list[str]]]:
    """Start the CLI, wait for its ``serving`` line, always stop it (TERM, then KILL)."""
    proc = subprocess.Popen([*CMD, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, cwd=ROOT, start_new_session=True)
    lines: list[str] = []
    serving = threading.Event()
    info: dict[str, object] = {}

    def reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if '"msg":"serving"' in line:
                info.update(json.loads(line))
                serving.set()

    threading.Thread(target=reader, daemon=True).start()
    try:
        if not serving.wait(30):
            raise AssertionError("no serving line:\n" + "".join(lines))
        yield info, lines
    finally:
        stop_group(proc, grace=10.0)
