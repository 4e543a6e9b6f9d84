"""How much latency the local gateway adds over going straight to a pod.

Stands up the local stack, measures its capacity roughly (closed loop, straight to the
pods), then at half that rate (open loop, same prompts) measures request latency straight
to the pods, via the ext_proc gateway and via the round-robin baseline gateway, and prints
p50/p99 of each and of the difference. Run: ``python benchmarks/gateway_overhead.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from fixtures.localstack import LocalStack, LocalStackConfig, SimulatorParams
from fixtures.stack import Stack

PROMPTS = [f"Request {i}: tell me about lamplighters number {i % 7}" for i in range(64)]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(session: aiohttp.ClientSession, url: str, model: str, prompt: str) -> float:
    started = time.perf_counter()
    body = {"model": model, "prompt": prompt, "max_tokens": 2}
    async with session.post(f"{url}/v1/completions", json=body) as response:
        await response.read()
        response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def capacity(stack: Stack, seconds: float, concurrency: int) -> float:
    """Requests/s through the gateway (pods + EPP + gateway: the stack as users see it)
    with ``concurrency`` clients always busy."""
    urls = itertools.repeat(stack.gateway_url)
    prompts = itertools.cycle(PROMPTS)
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await _one(session, next(urls), stack.model, next(prompts))
            done += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return done / seconds


async def open_loop(next_url: Callable[[], str], model: str, rate: float,
                    seconds: float) -> list[float]:
    """Latencies (ms) of requests sent at a fixed rate, whatever the answers' pace."""
    count = int(rate * seconds)
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(
                _one(session, next_url(), model, PROMPTS[i % len(PROMPTS)])))
        return list(await asyncio.gather(*tasks))


def _summary(name: str, samples: list[float], reference: list[float] | None) -> str:
    p50, p99 = _percentile(samples, 0.5), _percentile(samples, 0.99)
    line = f"{name:10} n={len(samples):5}  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
    if reference:
        line += (f"   added: p50 {p50 - _percentile(reference, 0.5):+6.2f} ms,"
                 f" p99 {p99 - _percentile(reference, 0.99):+6.2f} ms")
    return line


async def measure(stack: Stack, seconds: float, concurrency: int, rate: float | None) -> None:
    cap = await capacity(stack, seconds, concurrency)
    rate = rate or cap / 2
    print(f"capacity (closed loop, {concurrency} clients, via the gateway): {cap:.0f} req/s;"
          f" measuring at {rate:.0f} req/s for {seconds:g}s each")
    pods = itertools.cycle([p.url for p in stack.pods])
    direct = await open_loop(lambda: next(pods), stack.model, rate, seconds)
    via_gateway = await open_loop(lambda: stack.gateway_url, stack.model, rate, seconds)
    via_baseline = await open_loop(lambda: stack.baseline_url, stack.model, rate, seconds)
    print(_summary("direct", direct, None))
    print(_summary("gateway", via_gateway, direct))
    print(_summary("baseline", via_baseline, direct))
    print(f"(mean added by the gateway: "
          f"{statistics.mean(via_gateway) - statistics.mean(direct):+.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=None,
                        help="requests/s to measure at (default: half the measured capacity)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        config = LocalStackConfig(log_dir=Path(logs), pods=args.pods,
                                  simulator=SimulatorParams(), gateway_log_requests=False)
        with LocalStack(config) as stack:
            asyncio.run(measure(stack, args.seconds, args.concurrency, args.rate))


if __name__ == "__main__":
    main()
