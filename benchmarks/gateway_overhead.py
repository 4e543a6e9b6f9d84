"""How much latency the local gateway (Envoy + its EPP) adds over going straight to a pod.

What is measured, in order (all with one request shape: the conformance workload's
streaming completion, a ~1,000-token prompt, 32 output tokens with ``ignore_eos``):

1. **Modelled capacity.** The serving capacity of the *simulated pods*, not of the Python
   harness: a short closed-loop concurrency ladder straight to the pods (round-robin by the
   client; 2, 4, 8, 16 clients per pod, warm-up then a measuring window each), capacity =
   the highest completion rate reached. The analytic estimate from the simulator's step
   model (prefill + decode cost per step, KV-limited batch) is printed beside it. With the
   default pod parameters the KV cache (512 blocks x 16 tokens) holds ~7 such requests, so a
   pod serves ~7 req/s: the stack, not the harness, is the bottleneck.
2. **Unloaded overhead.** Requests one at a time, interleaved direct / EPP gateway /
   round-robin gateway: TTFT and E2E per path and the difference of their percentiles.
3. **Overhead at half capacity.** Open loop, Poisson arrivals at half the capacity (seeded:
   every path gets the same inter-arrival gaps and the same prompts), each path in turn for
   ``--seconds``, repeated ``--rounds`` times in rotated order so machine noise drifts over
   all paths alike. Every prompt starts with a tag unique to its (path, round, index), so no
   request hits a prefix cached by another phase: all paths see cold caches. Printed: TTFT
   and E2E p50/p99 per path, and the added latency as the difference of the percentiles of
   the two distributions (not of paired requests). (A ``Server-Timing`` breakdown is
   printed when the gateway sends one; Envoy does not.)

Default = the suites' configuration: nothing pinned, Envoy's access log on, scheduler_ref
logging every decision. ``--pin split`` (pods + client on CPU 0, Envoy and scheduler_ref on
CPU 1) and ``--quiet`` give the best case; print it as a separate, labelled run. The load
average is printed before and after. Figures on a busy 2-core box are noisy; read
p99 with that in mind (it rests on ~1% of the samples).

Run: ``.venv/bin/python benchmarks/gateway_overhead.py`` (about 4 minutes with defaults;
``--rounds 1 --seconds 10`` for a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from fixtures.localstack import LocalStack, LocalStackConfig, SimulatorParams
from fixtures.stack import Stack

PROMPT_TOKENS = 1000
OUTPUT_TOKENS = 32
PATHS = ("direct", "gateway", "baseline")
GATEWAY_TIMINGS = ("epp-req", "upstream", "epp-resp")


def prompt(tag: str, index: int) -> str:
    """~PROMPT_TOKENS tokens (3-letter words: one simulator token each), unique by ``tag``.

    The text after the tag depends only on ``index``, so every path gets the same prompts.
    """
    return f"{tag} {index:06d} " + _words(index)


@functools.lru_cache(maxsize=4096)
def _words(index: int) -> str:
    rng = random.Random(index)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choices(letters, k=3)) for _ in range(PROMPT_TOKENS - 8))


@dataclass
class Sample:
    ttft_ms: float
    e2e_ms: float
    prompt_tokens: int = 0
    cached_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _server_timing(value: str) -> dict[str, float]:
    out = {}
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, dur = param.strip().partition("=")
            if key == "dur":
                out[name] = float(dur)
    return out


async def one(session: aiohttp.ClientSession, url: str, model: str, text: str) -> Sample:
    body = {
        "model": model,
        "prompt": text,
        "max_tokens": OUTPUT_TOKENS,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    tail = b""
    async with session.post(f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        timings = _server_timing(response.headers.get("server-timing", ""))
        async for chunk in response.content.iter_any():
            if first is None and chunk:
                first = time.perf_counter()
            tail = (tail + chunk)[-4096:]
    end = time.perf_counter()
    sample = Sample(((first or end) - started) * 1000, (end - started) * 1000, timings=timings)
    for line in tail.split(b"\n"):
        if line.startswith(b"data: {") and b'"usage"' in line:
            usage = json.loads(line[6:]).get("usage") or {}
            sample.prompt_tokens = int(usage.get("prompt_tokens", 0))
            details = usage.get("prompt_tokens_details") or {}
            sample.cached_tokens = int(details.get("cached_tokens") or 0)
    return sample


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=300)
    )


# -- capacity --------------------------------------------------------------------------------


def modelled_capacity(sim: SimulatorParams, pods: int) -> float:
    """Req/s the step model allows: per second, steps x base + prefill + decode costs <= 1 s,
    with the batch bounded by KV blocks (prompt + output per request) and max_num_seqs."""
    blocks = math.ceil((PROMPT_TOKENS + OUTPUT_TOKENS) / sim.block_size)
    batch = max(1.0, min(sim.max_num_seqs, sim.num_gpu_blocks / blocks))
    decodes = OUTPUT_TOKENS - 1  # the first token ends the prefill step
    # seconds of engine time per request: its share of the steps' base cost, its tokens
    per_request = (
        (
            decodes / batch * sim.step_base_ms
            + PROMPT_TOKENS * sim.prefill_ms_per_token
            + decodes * sim.decode_ms_per_seq
        )
        * sim.time_scale
        / 1000
    )
    return pods / per_request


async def _closed_loop(session: aiohttp.ClientSession, stack: Stack, clients: int,
                       warmup: float, window: float) -> float:
    """Completions/s of ``clients`` back-to-back clients, counted after ``warmup``."""
    pods = [p.url for p in stack.pods]
    start = time.perf_counter()
    measure_from, measure_to = start + warmup, start + warmup + window
    done = 0

    async def client(i: int) -> None:
        nonlocal done
        index = itertools.count(i * 100_000)
        while time.perf_counter() < measure_to:
            text = prompt(f"capacity-{clients}", next(index))
            await one(session, pods[i % len(pods)], stack.model, text)
            if measure_from <= time.perf_counter() <= measure_to:
                done += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return done / window


async def capacity_ladder(stack: Stack, warmup: float, window: float) -> float:
    """Highest completion rate of closed-loop clients straight to the pods."""
    best = 0.0
    async with _session() as session:
        for per_pod in (2, 4, 8, 16):
            clients = per_pod * len(stack.pods)
            rate = await _closed_loop(session, stack, clients, warmup, window)
            print(f"  {clients:3d} clients straight to the pods: {rate:6.2f} req/s", flush=True)
            best = max(best, rate)
            if rate < best * 0.9:  # past saturation: the queue only grows from here
                break
    return best


# -- measuring -------------------------------------------------------------------------------


def _urls(stack: Stack, path: str) -> itertools.cycle[str]:
    if path == "direct":
        return itertools.cycle([p.url for p in stack.pods])
    return itertools.cycle([stack.gateway_url if path == "gateway" else stack.baseline_url])


async def open_loop(stack: Stack, path: str, tag: str, gaps: Sequence[float]) -> list[Sample]:
    """Send one request after each gap (seconds), whatever the answers' pace."""
    urls = _urls(stack, path)
    async with _session() as session:
        tasks = []
        due = time.perf_counter()
        for index, gap in enumerate(gaps):
            due += gap
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(one(session, next(urls), stack.model, prompt(tag, index)))
            )
        return list(await asyncio.gather(*tasks))


async def sequential(stack: Stack, count: int) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {p: [] for p in PATHS}
    urls = {p: _urls(stack, p) for p in PATHS}
    async with _session() as session:
        for index in range(count):
            for path in PATHS:
                out[path].append(
                    await one(session, next(urls[path]), stack.model, prompt(f"seq-{path}", index))
                )
    return out


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def report(title: str, samples: dict[str, list[Sample]]) -> None:
    print(f"\n{title}")
    print(
        f"  {'path':9} {'n':>5} | {'TTFT p50':>8} {'p99':>8} | {'E2E p50':>8} {'p99':>8} |"
        f" {'added TTFT p50':>14} {'p99':>7} | {'added E2E p50':>13} {'p99':>7}   (ms)"
    )
    direct = samples["direct"]
    for path in PATHS:
        s = samples[path]
        ttft, e2e = [x.ttft_ms for x in s], [x.e2e_ms for x in s]
        line = (
            f"  {path:9} {len(s):5} | {_pct(ttft, 50):8.1f} {_pct(ttft, 99):8.1f} |"
            f" {_pct(e2e, 50):8.1f} {_pct(e2e, 99):8.1f} |"
        )
        if path != "direct":
            d_ttft, d_e2e = [x.ttft_ms for x in direct], [x.e2e_ms for x in direct]
            line += (
                f" {_pct(ttft, 50) - _pct(d_ttft, 50):+14.2f}"
                f" {_pct(ttft, 99) - _pct(d_ttft, 99):+7.2f} |"
                f" {_pct(e2e, 50) - _pct(d_e2e, 50):+13.2f}"
                f" {_pct(e2e, 99) - _pct(d_e2e, 99):+7.2f}"
            )
        print(line)
    for path in ("gateway", "baseline"):
        parts = []
        for name in GATEWAY_TIMINGS:
            values = [x.timings[name] for x in samples[path] if name in x.timings]
            if values:
                parts.append(f"{name} p50 {_pct(values, 50):.2f} p99 {_pct(values, 99):.2f}")
        if parts:
            print(f"  {path} Server-Timing (ms): " + ", ".join(parts))
    everything = [x for s in samples.values() for x in s]
    prompts = [x.prompt_tokens for x in everything if x.prompt_tokens]
    cached = sum(x.cached_tokens for x in everything)
    if prompts:
        print(
            f"  prompt tokens mean {np.mean(prompts):.0f}; cached prompt tokens, all paths: "
            f"{cached}"
        )


async def measure(stack: Stack, args: argparse.Namespace, sim: SimulatorParams) -> None:
    print(
        f"request shape: completions, stream, ~{PROMPT_TOKENS}-token prompt, "
        f"{OUTPUT_TOKENS} output tokens (ignore_eos); {len(stack.pods)} pods"
    )
    estimate = modelled_capacity(sim, len(stack.pods))
    if args.rate:
        rate = args.rate
        print(f"capacity: not measured (--rate {rate:g}); step-model estimate {estimate:.1f}")
    else:
        print("capacity ladder (closed loop, straight to the pods):")
        cap = await capacity_ladder(stack, args.warmup, args.window)
        rate = cap / 2
        print(
            f"capacity: {cap:.1f} req/s measured (step-model estimate {estimate:.1f}); "
            f"measuring at half: {rate:.2f} req/s"
        )

    report(
        f"unloaded, sequential ({args.sequential} requests per path, interleaved)",
        await sequential(stack, args.sequential),
    )

    rng = random.Random(args.seed)
    count = max(1, int(rate * args.seconds))
    loaded: dict[str, list[Sample]] = {p: [] for p in PATHS}
    for round_ in range(args.rounds):
        gaps = [rng.expovariate(rate) for _ in range(count)]
        order = PATHS[round_ % 3 :] + PATHS[: round_ % 3]
        for path in order:
            loaded[path] += await open_loop(stack, path, f"r{round_}-{path}", gaps)
            await asyncio.sleep(1.0)  # let the pods drain before the next path
    report(
        f"open loop, Poisson {rate:.2f} req/s, {args.rounds} x {args.seconds:g} s per path "
        f"(seed {args.seed})",
        loaded,
    )


def pin(stack: LocalStack, mode: str) -> str:
    if mode == "none" or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    pods_cpu, gateway_cpu = {cpus[0]}, {cpus[1]}
    for process in stack.processes():
        if process.pid is not None:
            target = pods_cpu if process.name.startswith("sim-") else gateway_cpu
            os.sched_setaffinity(process.pid, target)
    os.sched_setaffinity(0, pods_cpu)
    return (
        f"BEST CASE: pods + client on CPU {cpus[0]}, Envoy + scheduler_ref "
        f"on CPU {cpus[1]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pods", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="per path and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=20, help="unloaded requests per path")
    parser.add_argument("--warmup", type=float, default=3.0, help="capacity ladder, per level")
    parser.add_argument("--window", type=float, default=6.0, help="capacity ladder, per level")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="req/s to measure at (default: half the measured capacity)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pin", choices=["split", "none"], default="none",
                        help="split: best case on dedicated CPUs (default none, as the suites)")
    parser.add_argument("--scheduler", choices=("ref", "llm-d"), default="ref",
                        help="the EPP behind Envoy: scheduler_ref, or the upstream EPP "
                             "(GAIE v1.5.0; `make epp`)")
    parser.add_argument("--quiet", action="store_true",
                        help="Envoy's access log off (best case; the suites keep it on)")
    args = parser.parse_args()
    sim = SimulatorParams()
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"({os.cpu_count()} CPUs)"
    )
    with tempfile.TemporaryDirectory() as logs:
        config = LocalStackConfig(
            log_dir=Path(logs),
            pods=args.pods,
            simulator=sim,
            gateway_log_requests=not args.quiet,
            scheduler=args.scheduler,
        )
        local = LocalStack(config)
        with local as stack:
            print(f"gateway: envoy {stack.extras.get('gateway_version')}; EPP: "
                  f"{stack.extras.get('epp_implementation')} {stack.extras.get('epp_version')}")
            print(f"pinning: {pin(local, args.pin)}")
            asyncio.run(measure(stack, args, sim))
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
