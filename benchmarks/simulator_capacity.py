"""How many concurrent streams one simulator process serves while keeping to its step model.

Default = the suites' configuration: the simulator and the client unpinned at normal
priority, and the conformance prompt shape (20 shared 1,024-token system prompts + a
32-token question, as ``fixtures/plans/local.yaml``'s routing section). ``--privileged``
prints the best case instead, labelled as such: pinned cores, SCHED_FIFO, and one
200-token prompt cached after the first request (the setup described next).

Privileged setup. One ``python -m simulator`` process pinned to one CPU (``--sim-cpu 0``);
the load client runs in this process pinned to another (``--client-cpu 1``), so the two
never compete for a core. Both run under the real-time ``SCHED_FIFO`` policy when permitted
(``--priority fifo``, the default; else nice -10): on a shared 2-core machine other processes
otherwise delay timer wake-ups by milliseconds (measured here under load average ~1.5: a bare
``select()`` sleep on a pinned core woke 2-3 ms late at p99 at normal or nice -10 priority,
0.12 ms under SCHED_FIFO). That is the machine's noise, not the simulator's capacity;
``--priority none`` measures with it. The policy in effect and the load average are printed
with the figures.

Load. For each level (``--levels``, default 64,128,256,384,512,768,1024) N closed-loop
clients, each a keep-alive connection sending ``/v1/completions`` with ``stream: true``, the
conformance prompts (``--privileged``: the same 200-token prompt, prefix-cached after the
first request) and max_tokens spread over
50..150 (``--max-tokens`` ±50%) so streams do not finish in lockstep; a client sends its next
request as soon as the previous stream ends. ``max-num-seqs`` is 2048 and the KV pool large,
so all N streams decode in every step: a step takes 10 ms + 0.1 ms per sequence (the default
model), e.g. 35.6 ms at 256 streams. After ``--warmup`` seconds it measures ``--duration``
seconds:

- step overrun = actual minus modelled step duration, p50/p99/max in ms, from the
  simulator's own accounting: each ``engine.step(now)`` records ``now`` minus the modelled
  end of the step before it (raw samples via ``/admin/stats``). Under 1 ms means the loop
  keeps to the model. A late step does not shift later ones (each starts at its real now).
- TTFT gap = client-observed TTFT minus the server's own TTFT of the same request (paired by
  response id), p50/p99 in ms. Client TTFT runs from just before the request is written to
  the socket to the ``data_received`` callback carrying the first content chunk
  (``data: {"id":...``), stamped with ``time.monotonic`` on arrival. Server TTFT is the value
  ``vllm:time_to_first_token_seconds`` observes: from the moment the handler has the whole
  request body to the end of the step that emitted the first token. The gap is the loopback
  network, the server reading and parsing the request, the server writing the chunk after
  the step ends, and the client noticing it. Closed-loop clients send their next request
  right as a stream ends, i.e. at the start of a step while the server writes that step's
  tokens, so requests typically wait for the loop: a pessimistic case for the gap.
- tokens/s: SSE content chunks (one per token) the client received per second.
- CPU: the simulator's and the client's CPU time over wall time (1.0 = one core busy).

Headline: the largest level up to which every level kept step overrun p99 <= 1 ms, and its
TTFT gap p50. A level yields about ``duration / step time`` overrun samples (e.g. ~420 at 256
streams over 15 s), so a p99 rests on the worst few steps: a longer ``--duration`` gives
firmer figures.

Run: ``.venv/bin/python benchmarks/simulator_capacity.py [--levels 64,256 --duration 15]``
(extra simulator flags after ``--``). The client is a raw ``asyncio.Protocol`` (no HTTP
library, no per-line parsing: it finds the first chunk and the end of the chunked body), so
it costs far less CPU than the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np

from fixtures.serving import serving

PROMPT = " ".join(f"{i % 1000:03d}" for i in range(200))  # 200 tokens (privileged row)
GROUPS, SYSTEM_TOKENS, QUESTION_TOKENS, BODIES = 20, 1024, 32, 2000  # conformance shape


def conformance_prompts(rng: random.Random) -> list[str]:
    """Shared-prefix prompts as the routing suite sends them: 3-digit words, one token each
    for the simulator's tokenizer (``simulator.tokenizer``)."""

    def words(n: int) -> str:
        return " ".join(f"{rng.randrange(1000):03d}" for _ in range(n))

    systems = [words(SYSTEM_TOKENS) for _ in range(GROUPS)]
    return [f"{systems[i % GROUPS]} {words(QUESTION_TOKENS)}" for i in range(BODIES)]


@contextlib.contextmanager
def running(args: argparse.Namespace) -> Iterator[tuple[int, str]]:
    """The simulator on a reserved port through :func:`fixtures.serving.serving` (its output
    to a log file, its whole group stopped on exit, failure or Ctrl-C); yields (pid, url)."""
    log_dir = Path(tempfile.mkdtemp(prefix="simulator-capacity-"))
    print(f"simulator log: {log_dir / 'simulator.log'}")

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", str(port),
                "--max-num-seqs", "2048", "--num-gpu-blocks", "65536", "--log-level",
                "WARNING",
                "--enable-admin",  # /admin/stats gives the step overruns and server TTFTs
                *args.sim_args]

    with serving("simulator", argv, log_dir, timeout=30.0) as served:
        pid = served.process.pid
        assert pid is not None
        _place(pid, args.sim_cpu, args.priority)
        yield pid, served.url


def _place(pid: int, cpu: int, priority: str) -> None:
    """Pin every thread of ``pid`` to ``cpu`` and raise its priority (from the parent: no
    ``preexec_fn``, which is unsafe in a threaded parent)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        if cpu >= 0:
            os.sched_setaffinity(int(task), {cpu})
        _raise_priority(priority, int(task))


def _raise_priority(priority: str, pid: int = 0) -> None:
    """Run ``pid`` (0: this process) under SCHED_FIFO (``fifo``) or at nice -10 (``nice``,
    also the fallback) if allowed (root / CAP_SYS_NICE); ``none`` leaves it alone."""
    if priority == "fifo":
        try:
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
            return
        except PermissionError:
            pass
    if priority in ("fifo", "nice"):
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, pid, -10)


def _policy(pid: int) -> str:
    if os.sched_getscheduler(pid) == os.SCHED_FIFO:
        return "SCHED_FIFO"
    return f"nice {os.getpriority(os.PRIO_PROCESS, pid)}"


class StreamClient(asyncio.Protocol):
    """One keep-alive connection issuing streaming completions back to back.

    A raw protocol (no per-line coroutine) so the measuring client costs little CPU next to
    the server: it only looks for the first ``data: {`` (TTFT and response id), counts chunks
    and finds the end of the chunked body.
    """

    def __init__(
        self,
        requests: list[bytes],
        ttfts: dict[str, float],
        counts: list[int],
        errors: list[int],
        stop_at: float,
        measuring: asyncio.Event,
        done: asyncio.Future[None],
    ) -> None:
        self.requests, self.ttfts, self.counts, self.errors = requests, ttfts, counts, errors
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
            if buf.startswith(b"HTTP/1.1 ") and not buf.startswith(b"HTTP/1.1 200"):
                self.errors[0] += 1  # not expected at all: stop this connection
                assert self.transport is not None
                self.transport.close()
                return
            i = buf.find(b'data: {"id":"')
            if i >= 0:
                j = buf.find(b'"', i + 13)
                if j > 0:
                    if self.measuring.is_set():
                        self.ttfts[buf[i + 13 : j].decode()] = now - self.t0
                    self.first = False
        self.counts[0] += (self.tail[-6:] + data).count(b"data: {")  # one per token
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def level(
    host: str, port: int, sim_pid: int, n: int, duration: float, warmup: float, max_tokens: int,
    prompts: list[str] | None = None,
) -> dict[str, float]:
    requests = []  # output lengths spread over max_tokens/2..3*max_tokens/2: no lockstep
    rng = random.Random(n)
    outs = range(max_tokens // 2, 3 * max_tokens // 2 + 1)
    pairs = ([(PROMPT, out) for out in outs] if prompts is None
             else [(prompt, rng.choice(outs)) for prompt in prompts])
    for prompt, out in pairs:
        body = json.dumps(
            {"model": "sim-model", "prompt": prompt, "max_tokens": out, "stream": True}
        ).encode()
        requests.append(
            (
                f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                f"application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    loop = asyncio.get_running_loop()
    ttfts: dict[str, float] = {}
    counts = [0]
    errors = [0]
    stop_at = time.monotonic() + warmup + duration
    measuring = asyncio.Event()
    dones = []
    for _ in range(n):
        done: asyncio.Future[None] = loop.create_future()
        dones.append(done)
        await asyncio.sleep(0.002)  # stagger the first wave
        await loop.create_connection(
            functools.partial(
                StreamClient, requests, ttfts, counts, errors, stop_at, measuring, done
            ),
            host,
            port,
        )
    async with aiohttp.ClientSession() as http:
        await asyncio.sleep(warmup)
        async with http.get(f"http://{host}:{port}/admin/stats?reset=1") as r:
            await r.read()
        measuring.set()
        counts[0] = 0
        t_start = time.monotonic()
        sim_cpu0, client_cpu0 = _cpu_seconds(sim_pid), time.process_time()
        await asyncio.sleep(duration)
        async with http.get(f"http://{host}:{port}/admin/stats") as r:
            stats = await r.json()
        elapsed = time.monotonic() - t_start
        sim_cpu = (_cpu_seconds(sim_pid) - sim_cpu0) / elapsed
        client_cpu = (time.process_time() - client_cpu0) / elapsed
        tokens = counts[0]
    await asyncio.wait_for(asyncio.gather(*dones), 60)
    over = np.array(stats["overruns"]) * 1000
    server_ttft = dict(stats["ttft"])
    gaps = np.array(
        [(c - server_ttft[rid]) * 1000 for rid, c in ttfts.items() if rid in server_ttft]
    )
    return {
        "streams": n,
        "steps": len(over),
        "over_p50": float(np.percentile(over, 50)) if len(over) else float("nan"),
        "over_p99": float(np.percentile(over, 99)) if len(over) else float("nan"),
        "over_max": float(over.max()) if len(over) else float("nan"),
        "gap_n": len(gaps),
        "gap_p50": float(np.percentile(gaps, 50)) if len(gaps) else float("nan"),
        "gap_p99": float(np.percentile(gaps, 99)) if len(gaps) else float("nan"),
        "tok_s": tokens / elapsed,
        "sim_cpu": sim_cpu,
        "client_cpu": client_cpu,
        "errors": errors[0],
        "load1": os.getloadavg()[0],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--levels", default="64,128,256,384,512,768,1024", help="concurrent streams per level"
    )
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per level")
    p.add_argument("--max-tokens", type=int, default=100, help="mean output tokens per request")
    p.add_argument(
        "--sim-cpu", type=int, default=-1, help="CPU the simulator is pinned to; -1: not pinned"
    )
    p.add_argument(
        "--client-cpu", type=int, default=-1, help="CPU the client is pinned to; -1: not pinned"
    )
    p.add_argument(
        "--priority",
        choices=["fifo", "nice", "none"],
        default="none",
        help="scheduling of the simulator and the client: SCHED_FIFO, nice -10 or unchanged",
    )
    p.add_argument(
        "--privileged", action="store_true",
        help="best case (labelled): pinned to CPUs 0/1, SCHED_FIFO, one cached 200-token prompt",
    )
    p.add_argument("sim_args", nargs="*", help="extra simulator flags (after --)")
    args = p.parse_args()
    if args.privileged:
        args.sim_cpu, args.client_cpu, args.priority = 0, 1, "fifo"
    label = ("best case (privileged: pinned, SCHED_FIFO, one cached prompt)" if args.privileged
             else "suite configuration (unpinned, normal priority, conformance prompts)")
    prompts = None if args.privileged else conformance_prompts(random.Random(7))
    cpus = os.sched_getaffinity(0)
    for cpu in (args.sim_cpu, args.client_cpu):
        if cpu >= 0 and cpu not in cpus:
            raise SystemExit(f"CPU {cpu} is not available (have {sorted(cpus)}); pass -1")
    if args.client_cpu >= 0:
        os.sched_setaffinity(0, {args.client_cpu})
    _raise_priority(args.priority)
    load0 = os.getloadavg()
    resources = contextlib.ExitStack()  # the simulator, stopped in the finally below
    pid, url = resources.enter_context(running(args))
    print(
        f"simulator pid={pid} url={url} cpus={os.cpu_count()} sim_cpu={args.sim_cpu} "
        f"client_cpu={args.client_cpu} sim: {_policy(pid)}, client: {_policy(0)}\n"
        f"[{label}]\n"
        + ("prompt=200 tokens (cached after the first)" if prompts is None else
           f"prompts: {GROUPS} groups x {SYSTEM_TOKENS}-token system prompt + "
           f"{QUESTION_TOKENS}-token question")
        + f", max_tokens={args.max_tokens} ±50%, "
        f"default step model; load average before: "
        f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}"
    )
    rows = []
    try:
        for n in (int(x) for x in args.levels.split(",")):
            host, port = url.rsplit("//", 1)[1].split(":")
            rows.append(
                asyncio.run(
                    level(host, int(port), pid, n, args.duration, args.warmup,
                          args.max_tokens, prompts)
                )
            )
            r = rows[-1]
            print(
                f"  level {n}: done ({r['steps']} steps, {r['gap_n']} requests, "
                f"{r['errors']} errors, load {r['load1']:.2f})",
                flush=True,
            )
    finally:
        resources.close()
    load1 = os.getloadavg()
    print()
    print(
        f"{'streams':>7} {'steps':>6} {'overrun ms p50':>15} {'p99':>6} {'max':>6} "
        f"{'ttft gap ms p50':>16} {'p99':>6} {'requests':>8} {'tokens/s':>8} "
        f"{'sim cpu':>7} {'client cpu':>10} {'load1':>5}"
    )
    for r in rows:
        print(
            f"{r['streams']:>7} {r['steps']:>6} {r['over_p50']:>15.3f} {r['over_p99']:>6.3f} "
            f"{r['over_max']:>6.2f} {r['gap_p50']:>16.3f} {r['gap_p99']:>6.3f} "
            f"{r['gap_n']:>8} {r['tok_s']:>8.0f} {r['sim_cpu']:>7.2f} "
            f"{r['client_cpu']:>10.2f} {r['load1']:>5.2f}"
        )
    ok = []  # the levels up to the first one that breaks the 1 ms bound
    for r in sorted(rows, key=lambda r: r["streams"]):
        if not r["over_p99"] <= 1.0:
            break
        ok.append(r)
    print()
    print(
        f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
        f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}"
    )
    if ok:
        best = max(ok, key=lambda r: r["streams"])
        top = " (the highest level tested)" if len(ok) == len(rows) else ""
        print(
            f"max streams with step overrun p99 <= 1 ms: {best['streams']}{top} "
            f"(p99 {best['over_p99']:.3f} ms over {best['steps']} steps)"
        )
        print(
            f"TTFT gap (client - server) p50 at that level: {best['gap_p50']:.3f} ms "
            f"(p99 {best['gap_p99']:.3f} ms, n={best['gap_n']})"
        )
    else:
        print("max streams with step overrun p99 <= 1 ms: none of the levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
