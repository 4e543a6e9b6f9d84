"""Benchmark of scheduler_ref: decision time, ext_proc loopback round trip, index bound.

Prints figures; asserts nothing. Run: ``.venv/bin/python benchmarks/scheduler_latency.py``.

* decision: parse the JSON body + filters + scorers + pick + PreRequest index update, with
  16 endpoints and 8,000-character prompts (64 shared 4,000-char system prompts + unique tails).
* round trip: an Envoy-like gRPC client on loopback (headers, body, wait for routing answer).
* index size after N requests through the prefix index: bounded by endpoints x LRU capacity.
* scheduler_ref beside the upstream EPP (GAIE v1.5.0 ``cmd/epp``, when built: ``make epp``):
  both as processes on the same 16 endpoints (loopback addresses publishing the decision
  bench's fixed metrics), the same bodies sent to each in turn over ext_proc; each one's own
  ``inference_extension_scheduler_e2e_duration_seconds`` (histogram delta over the measured
  requests) gives its scheduling time, and the ratio of the means is printed. scheduler_ref's
  cycle includes its PreRequest hooks; the EPP's excludes them (they run in its director).

The default rows use the suites' configuration: scheduler_ref's production logging
(``setup_logging(0)``: JSON at INFO, one decision line per request) written to a file, as
the local stack's scheduler_ref writes its log, and no ``gc.freeze``; the round trip through
the real ext_proc servicer comes first. Extra rows labelled *best case* mute the logs and
freeze the set-up garbage: a lower bound the suites never see. (The suites also speak TLS
to the EPP; these in-process rows use a plaintext channel.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from fixtures.localstack import grpc_serving
from fixtures.ports import PortAllocator
from fixtures.processes import ProcessSupervisor
from fixtures.serving import REPO_ROOT, repo_env
from fixtures.tools import is_cached
from fixtures.upstream_epp import (
    EndpointPod,
    epp_metric_samples,
    ext_proc_pick,
    open_channel,
    upstream_epp_on_own_control_plane,
)
from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.datastore import Datastore
from scheduler_ref.extproc import ExtProcServicer
from scheduler_ref.logs import setup_logging
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.prefix_index import PrefixIndex, block_hashes
from scheduler_ref.request_parse import parse_request
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.types import Endpoint

NOW = 100.0
HEADERS = {":path": "/v1/completions", "x-request-id": "bench"}
SUITE = "suite configuration"
BEST_CASE = "best case: logs muted, gc.freeze"


@contextmanager
def suite_logging() -> Iterator[None]:
    """scheduler_ref's production logging (``setup_logging(0)``) into a file, as in the suites."""
    with tempfile.NamedTemporaryFile("w", prefix="scheduler-ref-", suffix=".log") as log:
        setup_logging(0)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(log)
        try:
            yield
        finally:
            logging.getLogger().handlers[:] = []


@contextmanager
def best_case() -> Iterator[None]:
    """Logs muted and set-up garbage frozen: the lower bound, never the suites' setting."""
    logging.getLogger("scheduler_ref").setLevel(logging.WARNING)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        logging.getLogger("scheduler_ref").setLevel(logging.NOTSET)


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


def bench_decision(n: int, endpoints: int, label: str) -> None:
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
        f"[{label}] decision ({endpoints} endpoints, 8,000-char prompts, n={n}): "
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


def bench_round_trip(n: int, endpoints: int, label: str) -> None:
    """The server's real per-request work: the ext_proc servicer, its decision log included."""
    samples = asyncio.run(_round_trips(n, endpoints))
    print(
        f"[{label}] ext_proc round trip on loopback (python grpc.aio client, "
        f"n={len(samples)}): "
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


E2E = "inference_extension_scheduler_e2e_duration_seconds"


def _metrics_page(e: Endpoint) -> bytes:
    labels = 'model_name="llama"'
    return (f"vllm:num_requests_waiting{{{labels}}} {e.waiting}\n"
            f"vllm:num_requests_running{{{labels}}} 0\n"
            f"vllm:kv_cache_usage_perc{{{labels}}} {e.kv_usage}\n"
            f'vllm:cache_config_info{{block_size="16",num_gpu_blocks="4096"}} 1\n').encode()


@contextmanager
def _metrics_endpoints(eps: list[Endpoint], port: int) -> Iterator[list[EndpointPod]]:
    """Each endpoint on its own loopback IP (127.0.2.N, shared port) serving only /metrics:
    nothing is sent to the pods when a scheduler decides, so no model server is needed."""
    servers = []
    pods = []
    for i, e in enumerate(eps):
        page = _metrics_page(e)

        class Handler(BaseHTTPRequestHandler):
            body = page

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(self.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # a scraper that gave up early
                    self.wfile.write(self.body)

            def log_message(self, *args: object) -> None:
                pass

        ip = f"127.0.2.{i + 1}"
        server = ThreadingHTTPServer((ip, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        pods.append(EndpointPod(f"pod-{i}", ip, port))
    try:
        yield pods
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _histogram(metrics_url: str) -> dict[str, float]:
    """The scheduler-time histogram's _sum, _count and cumulative buckets (by ``le``)."""
    import httpx

    text = httpx.get(metrics_url, timeout=5).text
    out = {name: sum(v for _, v in epp_metric_samples(text, f"{E2E}{name}"))
           for name in ("_sum", "_count")}
    for labels, value in epp_metric_samples(text, f"{E2E}_bucket"):
        out[labels["le"]] = out.get(labels["le"], 0.0) + value
    return out


def _summary(before: dict[str, float], after: dict[str, float]) -> tuple[float, float, float]:
    """(mean, p50 bucket bound, p99 bucket bound) in microseconds over the measured requests."""
    count = after["_count"] - before["_count"]
    mean = (after["_sum"] - before["_sum"]) / count * 1e6
    bounds = sorted((float(le), after[le] - before.get(le, 0.0))
                    for le in after if not le.startswith("_"))

    def bound(q: float) -> float:
        return next(le for le, cum in bounds if cum >= q * count) * 1e6

    return mean, bound(0.5), bound(0.99)


def bench_upstream_epp(n: int, endpoints: int, log_dir: Path) -> None:
    if not all(is_cached(b) for b in ("epp", "etcd", "kube-apiserver")):
        print("scheduler time vs the upstream EPP: not measured, the EPP is not built "
              "(`make epp`)")
        return
    eps = _endpoints(endpoints, random.Random(1))  # the decision bench's metrics
    bodies = [json.loads(b) for b in _bodies(n + 50, random.Random(6))]
    allocator = PortAllocator(host="127.0.0.1")
    try:
        with ProcessSupervisor(log_dir) as supervisor, \
                _metrics_endpoints(eps, allocator.reserve()) as pods, \
                upstream_epp_on_own_control_plane(supervisor, allocator, log_dir / "epp", pods,
                                                  DEFAULT_CONFIG) as (epp, _):
            grpc_port, health, metrics = allocator.reserve_many(3)
            ref = supervisor.start("scheduler_ref", [
                sys.executable, "-m", "scheduler_ref", "--host", "127.0.0.1",
                "--grpc-port", str(grpc_port), "--grpc-health-port", str(health),
                "--metrics-port", str(metrics), "--secure-serving=false",
                "--endpoints", ",".join(f"{p.ip}:{p.port}" for p in pods)],
                env=repo_env(), cwd=REPO_ROOT)
            ref.wait_ready(lambda: grpc_serving(f"127.0.0.1:{health}"), 30)
            time.sleep(1.0)  # both have scraped every endpoint's metrics by now
            sides = {"scheduler_ref": (f"127.0.0.1:{grpc_port}",
                                       f"http://127.0.0.1:{metrics}/metrics"),
                     f"upstream EPP ({epp.version})": (epp.grpc_address, epp.metrics_url)}
            channels = {name: open_channel(address, None) for name, (address, _) in sides.items()}
            trips: dict[str, list[float]] = {name: [] for name in sides}
            before: dict[str, dict[str, float]] = {}
            for i, body in enumerate(bodies):
                if i == 50:  # warm-up done: measure from here
                    before = {name: _histogram(url) for name, (_, url) in sides.items()}
                for name, (address, _) in sides.items():  # interleaved: noise hits both
                    t0 = time.perf_counter_ns()
                    ext_proc_pick(address, None, body, channel=channels[name])
                    if i >= 50:
                        trips[name].append((time.perf_counter_ns() - t0) / 1000)
            for channel in channels.values():
                channel.close()
            summaries = {name: _summary(before[name], _histogram(url))
                         for name, (_, url) in sides.items()}
    finally:
        allocator.release_all()
    print(f"scheduling time on the same inputs ({endpoints} endpoints, 8,000-char prompts, "
          f"n={n} each, interleaved; own scheduler_e2e histogram, p50/p99 = bucket bounds):")
    for name, (mean, p50, p99) in summaries.items():
        print(f"  {name:<34} mean {mean:7.1f} us  p50 <= {p50:.0f} us  p99 <= {p99:.0f} us  "
              f"| ext_proc round trip p50 {_pct(trips[name], 50):.0f} us  "
              f"p99 {_pct(trips[name], 99):.0f} us")
    ref_mean, epp_mean = (summaries[name][0] for name in sides)
    print(f"  ratio scheduler_ref / upstream EPP (mean scheduling time): "
          f"{ref_mean / epp_mean:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--decisions", type=int, default=5000)
    ap.add_argument("--round-trips", type=int, default=1000)
    ap.add_argument("--index-requests", type=int, default=1_000_000)
    ap.add_argument("--endpoints", type=int, default=16)
    ap.add_argument("--capacity", type=int, default=31250)
    ap.add_argument("--epp-requests", type=int, default=1000,
                    help="requests sent to each of scheduler_ref and the upstream EPP (0: skip)")
    a = ap.parse_args()
    with suite_logging():
        bench_round_trip(a.round_trips, a.endpoints, SUITE)
        bench_decision(a.decisions, a.endpoints, SUITE)
    with best_case():
        bench_round_trip(a.round_trips, a.endpoints, BEST_CASE)
        bench_decision(a.decisions, a.endpoints, BEST_CASE)
    bench_index_size(a.index_requests, a.endpoints, a.capacity)
    if a.epp_requests > 0:
        with tempfile.TemporaryDirectory(prefix="lamplighter-sched-bench-") as logs:
            bench_upstream_epp(a.epp_requests, a.endpoints, Path(logs))


if __name__ == "__main__":
    main()
