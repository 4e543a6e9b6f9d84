"""How many concurrent streams one simulator process serves while keeping to its step model.

Spawns ``python -m simulator`` (one process), then for each level of concurrent closed-loop
streaming clients measures, after a warm-up:

- step overrun = actual - modelled step end, p50/p99 (from /admin/stats raw samples): the
  loop keeps to the model while this stays under 1 ms;
- client-observed TTFT minus the server's own TTFT, p50/p99, paired by response id;
- tokens/s delivered.

Prints a table and the headline: the largest level whose p99 overrun is <= 1 ms, and the
TTFT gap at that level. Run: ``.venv/bin/python benchmarks/simulator_capacity.py``
(``--levels 64,128,256,512 --duration 8``). Figures depend on the host; the client shares
the machine, so on a 2-core box they are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import aiohttp
import numpy as np

PROMPT = " ".join(f"{i % 1000:03d}" for i in range(200))  # 200 tokens


def spawn(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", "0",
           "--max-num-seqs", "2048", "--num-gpu-blocks", "65536", "--log-level", "WARNING",
           *args.sim_args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stderr is not None
    # the ready line is logged at INFO; WARNING hides it, so poll /health instead
    deadline = time.monotonic() + 20
    url = None
    while time.monotonic() < deadline and url is None:
        time.sleep(0.2)
        url = _find_port(proc)
    if url is None:
        proc.kill()
        raise SystemExit("simulator did not start")
    return proc, url


def _find_port(proc: subprocess.Popen[str]) -> str | None:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if f"pid={proc.pid}," in line:
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            if m:
                return f"http://127.0.0.1:{m.group(1)}"
    return None


class StreamClient(asyncio.Protocol):
    """One keep-alive connection issuing streaming completions back to back.

    A raw protocol (no per-line coroutine) so the measuring client costs little CPU next to
    the server: it only looks for the first ``data: {`` (TTFT and response id), counts chunks
    and finds the end of the chunked body.
    """

    def __init__(self, requests: list[bytes], ttfts: dict[str, float], counts: list[int],
                 stop_at: float, measuring: asyncio.Event, done: asyncio.Future[None]) -> None:
        self.requests, self.ttfts, self.counts = requests, ttfts, counts
        self.stop_at, self.measuring, self.done = stop_at, measuring, done
        self.transport: asyncio.Transport | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        self.t0 = time.monotonic()
        self.first = True
        self.tail = b""
        assert self.transport is not None
        self.transport.write(random.choice(self.requests))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.tail + data
        if self.first:
            i = buf.find(b'data: {"id":"')
            if i >= 0:
                j = buf.find(b'"', i + 13)
                if j > 0:
                    if self.measuring.is_set():
                        self.ttfts[buf[i + 13 : j].decode()] = now - self.t0
                    self.first = False
        self.counts[0] += data.count(b"data: {")
        if b"data: [DONE]" in buf and buf.endswith(b"\r\n0\r\n\r\n"):
            if time.monotonic() < self.stop_at:
                self._send()
            else:
                assert self.transport is not None
                self.transport.close()
            return
        self.tail = buf[-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def level(host: str, port: int, n: int, duration: float, warmup: float,
                max_tokens: int) -> dict[str, float]:
    requests = []  # output lengths spread over max_tokens/2..3*max_tokens/2: no lockstep
    for out in range(max_tokens // 2, 3 * max_tokens // 2 + 1):
        body = json.dumps({"model": "sim-model", "prompt": PROMPT, "max_tokens": out,
                           "stream": True}).encode()
        requests.append((f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                        + body)
    loop = asyncio.get_running_loop()
    ttfts: dict[str, float] = {}
    counts = [0]
    stop_at = time.monotonic() + warmup + duration
    measuring = asyncio.Event()
    dones = []
    for _ in range(n):
        done: asyncio.Future[None] = loop.create_future()
        dones.append(done)
        await asyncio.sleep(0.002)  # stagger the first wave
        await loop.create_connection(
            functools.partial(StreamClient, requests, ttfts, counts, stop_at, measuring, done),
            host, port)
    async with aiohttp.ClientSession() as http:
        await asyncio.sleep(warmup)
        async with http.get(f"http://{host}:{port}/admin/stats?reset=1") as r:
            await r.read()
        measuring.set()
        counts[0] = 0
        t_start = time.monotonic()
        await asyncio.sleep(duration)
        async with http.get(f"http://{host}:{port}/admin/stats") as r:
            stats = await r.json()
        elapsed = time.monotonic() - t_start
        tokens = counts[0]
    await asyncio.wait_for(asyncio.gather(*dones), 60)
    over = np.array(stats["overruns"]) * 1000
    server_ttft = dict(stats["ttft"])
    gaps = np.array([(c - server_ttft[rid]) * 1000 for rid, c in ttfts.items()
                     if rid in server_ttft])
    return {
        "streams": n, "steps": len(over),
        "over_p50": float(np.percentile(over, 50)) if len(over) else float("nan"),
        "over_p99": float(np.percentile(over, 99)) if len(over) else float("nan"),
        "gap_n": len(gaps),
        "gap_p50": float(np.percentile(gaps, 50)) if len(gaps) else float("nan"),
        "gap_p99": float(np.percentile(gaps, 99)) if len(gaps) else float("nan"),
        "tok_s": tokens / elapsed,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", default="64,128,256,512", help="concurrent streams per level")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per level")
    p.add_argument("--max-tokens", type=int, default=100, help="output tokens per request")
    p.add_argument("sim_args", nargs="*", help="extra simulator flags (after --)")
    args = p.parse_args()
    proc, url = spawn(args)
    print(f"simulator pid={proc.pid} url={url} cpus={os.cpu_count()} "
          f"prompt=200 tokens, max_tokens={args.max_tokens}, default step model")
    rows = []
    try:
        for n in (int(x) for x in args.levels.split(",")):
            host, port = url.rsplit("//", 1)[1].split(":")
            rows.append(asyncio.run(level(host, int(port), n, args.duration, args.warmup,
                                          args.max_tokens)))
            r = rows[-1]
            print(f"  level {n}: done ({r['steps']} steps, {r['gap_n']} requests)", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    print()
    print(f"{'streams':>8} {'steps':>6} {'overrun p50 ms':>15} {'overrun p99 ms':>15} "
          f"{'ttft gap p50 ms':>16} {'ttft gap p99 ms':>16} {'requests':>9} {'tokens/s':>9}")
    for r in rows:
        print(f"{r['streams']:>8} {r['steps']:>6} {r['over_p50']:>15.3f} {r['over_p99']:>15.3f} "
              f"{r['gap_p50']:>16.3f} {r['gap_p99']:>16.3f} {r['gap_n']:>9} {r['tok_s']:>9.0f}")
    ok = [r for r in rows if r["over_p99"] <= 1.0]
    print()
    if ok:
        best = max(ok, key=lambda r: r["streams"])
        print(f"capacity: {best['streams']} concurrent streams with step overrun p99 "
              f"{best['over_p99']:.3f} ms (<= 1 ms); client TTFT - server TTFT p50 "
              f"{best['gap_p50']:.3f} ms (n={best['gap_n']})")
    else:
        print("capacity: no level kept step overrun p99 <= 1 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
