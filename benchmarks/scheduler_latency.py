"""Benchmark of scheduler_ref: decision time, ext_proc loopback round trip, index bound.

Prints figures; asserts nothing. Run: ``.venv/bin/python benchmarks/scheduler_latency.py``.

* decision: parse the JSON body + filters + scorers + pick + PreRequest index update, with
  16 endpoints and 8,000-character prompts (64 shared 4,000-char system prompts + unique tails).
* round trip: an Envoy-like gRPC client on loopback (headers, body, wait for routing answer).
* index size after N requests through the prefix index: bounded by endpoints x LRU capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import time

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.datastore import Datastore
from scheduler_ref.extproc import ExtProcServicer
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.prefix_index import PrefixIndex, block_hashes
from scheduler_ref.request_parse import parse_request
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.types import Endpoint

NOW = 100.0
HEADERS = {":path": "/v1/completions", "x-request-id": "bench"}


def _endpoints(n: int, rng: random.Random) -> list[Endpoint]:
    return [
        Endpoint(
            key=f"10.0.0.{i}:8000",
            name=f"pod-{i}",
            waiting=rng.randint(0, 8),
            kv_usage=rng.random(),
            metrics_time=NOW,
        )
        for i in range(n)
    ]


def _bodies(n: int, rng: random.Random) -> list[bytes]:
    alphabet = "abcdefghijklmnopqrstuvwxyz     "
    systems = ["".join(rng.choice(alphabet) for _ in range(4000)) for _ in range(64)]
    out = []
    for i in range(n):
        tail = "".join(rng.choice(alphabet) for _ in range(3990))
        prompt = (rng.choice(systems) + tail + f"{i:010d}")[:8000]
        out.append(json.dumps({"model": "llama", "prompt": prompt, "max_tokens": 64}).encode())
    return out


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def bench_decision(n: int, endpoints: int) -> None:
    rng = random.Random(1)
    eps = _endpoints(endpoints, rng)
    sched = Scheduler(load_config(DEFAULT_CONFIG), rng=random.Random(2))
    bodies = _bodies(n, rng)
    for b in bodies[:200]:  # warm the index and the interpreter
        sched.schedule(parse_request("/v1/completions", HEADERS, b), eps, NOW)
    samples = []
    clock = time.perf_counter_ns
    for b in bodies:
        t0 = clock()
        req = parse_request("/v1/completions", HEADERS, b)
        sched.schedule(req, eps, NOW)
        samples.append((clock() - t0) / 1000)
    print(
        f"decision ({endpoints} endpoints, 8,000-char prompts, n={n}): "
        f"p50 {_pct(samples, 50):.1f} us  p90 {_pct(samples, 90):.1f} us  "
        f"p99 {_pct(samples, 99):.1f} us  mean {statistics.fmean(samples):.1f} us  "
        f"(goal p50 <= 100 us, p99 <= 500 us)"
    )


async def _round_trips(n: int, endpoints: int) -> list[float]:
    rng = random.Random(3)
    ds = Datastore()
    eps = _endpoints(endpoints, rng)
    ds.set_endpoints(eps)
    for e in eps:
        ds.update_metrics(e.key, {"metrics_time": NOW, "waiting": e.waiting})
    sched = Scheduler(load_config(DEFAULT_CONFIG), rng=random.Random(4))
    server = grpc.aio.server()
    pb_grpc.add_ExternalProcessorServicer_to_server(
        ExtProcServicer(ds, sched, EppMetrics("bench"), clock=lambda: NOW), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    bodies = _bodies(n, rng)
    headers = pb.ProcessingRequest(
        request_headers=pb.HttpHeaders(
            headers=base_pb2.HeaderMap(
                headers=[
                    base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in HEADERS.items()
                ]
            )
        )
    )
    samples = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.ExternalProcessorStub(ch)
            for b in bodies:
                msgs = [
                    headers,
                    pb.ProcessingRequest(request_body=pb.HttpBody(body=b, end_of_stream=True)),
                ]
                t0 = time.perf_counter_ns()
                call = stub.Process(iter(msgs))
                await call.read()  # the routing answer (deferred request_headers response)
                samples.append((time.perf_counter_ns() - t0) / 1000)
                while await call.read() is not grpc.aio.EOF:
                    pass
    finally:
        await server.stop(None)
    return samples[20:]


def bench_round_trip(n: int, endpoints: int) -> None:
    import logging

    logging.getLogger("scheduler_ref").setLevel(logging.WARNING)
    samples = asyncio.run(_round_trips(n, endpoints))
    print(
        f"ext_proc round trip on loopback (python grpc.aio client, n={len(samples)}): "
        f"p50 {_pct(samples, 50):.0f} us  p99 {_pct(samples, 99):.0f} us"
    )


def bench_index_size(n: int, endpoints: int, capacity: int) -> None:
    rng = random.Random(5)
    idx = PrefixIndex()
    keys = [f"10.0.0.{i}:8000" for i in range(endpoints)]
    t0 = time.perf_counter()
    for i in range(n):
        data = (f"{rng.getrandbits(64):016x}" * 16).encode()  # 256 chars = 4 blocks, unique
        idx.add(block_hashes(data, b"llama", 64, 256), keys[i % endpoints], capacity)
    secs = time.perf_counter() - t0
    print(
        f"prefix index after {n:,} requests: {idx.entries:,} entries, {len(idx):,} hashes "
        f"(bound {endpoints} x {capacity:,} = {endpoints * capacity:,}); {secs:.1f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--decisions", type=int, default=5000)
    ap.add_argument("--round-trips", type=int, default=1000)
    ap.add_argument("--index-requests", type=int, default=1_000_000)
    ap.add_argument("--endpoints", type=int, default=16)
    ap.add_argument("--capacity", type=int, default=31250)
    a = ap.parse_args()
    gc.freeze()  # keep collector pauses of the set-up garbage out of the figures
    bench_decision(a.decisions, a.endpoints)
    bench_round_trip(a.round_trips, a.endpoints)
    bench_index_size(a.index_requests, a.endpoints, a.capacity)


if __name__ == "__main__":
    main()
