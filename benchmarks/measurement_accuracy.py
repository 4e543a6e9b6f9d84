"""Does the harness measure TTFT like inference-perf, and like the server itself?

Runs the same seeded shared_prefix workload at the same constant rate twice against the same
target: once with lamplighter (Locust), once with inference-perf (own Python >= 3.12 venv,
local word-level tokenizer). Prints TTFT p50/p90 of both and their relative difference
(goal: within 10%), and client-side TTFT p50 minus the simulator's own TTFT p50 from
``GET /admin/stats`` (goal: <= 3 ms at moderate load). The simulator's prefix cache is reset
before each run so both start cold.

inference-perf generates its own prompt text from the same shape, so the two runs do not
send the same prompts; a cache hit and a miss differ in TTFT by the prefill. The script
therefore prints each run's server-side prefix-cache hit rate (``vllm:prefix_cache_*``
deltas) and our TTFT split by hit and miss (``usage.cached_tokens``): a difference between
the tools is only a measurement difference when their hit rates agree.

Target: ``--stack-file`` (from ``lamplighter up``; pods' URLs give the server TTFT) or, by
default, one simulator started here on loopback.

    .venv/bin/python benchmarks/measurement_accuracy.py [--rate 8 --duration 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.locality import pod_hit_rate  # noqa: E402
from fixtures.localstack import SimulatorParams, running_simulator  # noqa: E402
from fixtures.podmetrics import MetricsSnapshot  # noqa: E402
from loadtests.api import LoadSpec, run_load  # noqa: E402
from loadtests.peers import (  # noqa: E402
    add_peer_arguments,
    ensure_venv,
    inference_perf_config,
    run_inference_perf,
    write_word_tokenizer,
)
from loadtests.workloads import load_workload  # noqa: E402


@contextmanager
def simulator(log_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """One simulated pod with the simulator's own default (realistic) coefficients."""
    with running_simulator(log_dir, SimulatorParams(num_gpu_blocks=4096)) as served:
        yield served.url, [served.url]


@contextmanager
def stack_target(path: Path) -> Iterator[tuple[str, list[str]]]:
    stack = json.loads(path.read_text())
    yield stack["gateway_url"], [p["url"] for p in stack.get("pods", [])]


def reset(pods: list[str]) -> None:
    for pod in pods:
        httpx.post(pod + "/reset_prefix_cache", timeout=5)
        httpx.get(pod + "/admin/stats", params={"reset": "1"}, timeout=5)


def counters(pods: list[str]) -> dict[str, MetricsSnapshot]:
    """Each pod's metrics page, for the server-side hit rate of a run (counter deltas)."""
    return {pod: MetricsSnapshot.parse(httpx.get(pod + "/metrics", timeout=5).text)
            for pod in pods}


def _hit_rate(before: dict[str, MetricsSnapshot], after: dict[str, MetricsSnapshot]) -> float:
    try:
        return pod_hit_rate(before, after)
    except ValueError:  # no prefix-cache query counted: no rate
        return float("nan")


def server_ttfts(pods: list[str]) -> list[float]:
    return [
        t
        for pod in pods
        for _, t in httpx.get(pod + "/admin/stats", timeout=5).json().get("ttft", [])
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stack-file", type=Path)
    p.add_argument("--model", default="sim-model")
    p.add_argument("--rate", type=float, default=8.0)
    p.add_argument("--arrival", choices=("poisson", "constant"), default="poisson")
    p.add_argument("--duration", type=float, default=30.0)
    add_peer_arguments(p)
    p.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="ll-accuracy-")))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    workload = load_workload(
        {
            "type": "shared_prefix",
            "seed": 42,
            "shared_prefix": {
                "num_groups": 8,
                "num_prompts_per_group": 40,
                "system_prompt_len": 512,
                "question_len": 64,
                "output_len": 32,
            },
        }
    )
    target = (
        stack_target(args.stack_file) if args.stack_file else simulator(args.out)
    )
    with target as (url, pods):
        spec = LoadSpec(
            base_url=url,
            model=args.model,
            workload=workload,
            users=16,
            arrival=args.arrival,
            rate=args.rate,
            duration_s=args.duration,
        )
        reset(pods)
        counts0 = counters(pods)
        result = run_load(spec, args.out / "lamplighter")
        our_hit_rate = _hit_rate(counts0, counters(pods))
        ours = [s.ttft_s for s in result.samples if s.ok and s.ttft_s is not None]
        split = {
            label: [s.ttft_s for s in result.samples if s.ok and s.ttft_s is not None
                    and s.cached_tokens is not None and (s.cached_tokens > 0) == hit]
            for label, hit in (("hits", True), ("misses", False))
        }
        server = server_ttfts(pods)
        peer, peer_server, peer_hit_rate = None, [], float("nan")
        if not args.skip_inference_perf:
            exe = ensure_venv(args.bench_venv, args.python)
            tok = write_word_tokenizer(args.bench_venv, args.bench_venv / "word-tokenizer")
            reset(pods)
            counts0 = counters(pods)
            cfg = inference_perf_config(spec, tok, args.out / "inference-perf" / "report")
            peer = run_inference_perf(exe, cfg, args.out / "inference-perf")
            peer_hit_rate = _hit_rate(counts0, counters(pods))
            peer_server = server_ttfts(pods)
    ms = 1000.0
    p50, p90 = (float(np.percentile(ours, q)) for q in (50, 90))
    print(
        f"target {url}  rate {args.rate}/s {args.arrival}  {args.duration:.0f}s  "
        f"shared_prefix 8x40 512/64/32  output in {args.out}"
    )
    print(f"{'':28}{'n':>6}{'TTFT p50 ms':>14}{'TTFT p90 ms':>14}")
    print(
        f"{'lamplighter (Locust)':28}{len(ours):>6}{p50 * ms:>14.2f}{p90 * ms:>14.2f}  "
        f"validity={'ok' if result.validity.valid else result.validity.reasons}"
    )
    if peer is not None:
        ip50, ip90 = peer.ttft_s.get("median", float("nan")), peer.ttft_s.get("p90", float("nan"))
        print(f"{'inference-perf':28}{peer.requests:>6}{ip50 * ms:>14.2f}{ip90 * ms:>14.2f}")
        print(
            f"{'relative difference':28}{'':>6}{(p50 - ip50) / ip50:>14.1%}"
            f"{(p90 - ip90) / ip90:>14.1%}   (goal: within 10%)"
        )
    for label, values in split.items():
        if values:
            print(f"{'lamplighter, cache ' + label:28}{len(values):>6}"
                  f"{np.median(values) * ms:>14.2f}{np.percentile(values, 90) * ms:>14.2f}")
    print(f"server prefix hit rate: lamplighter run {our_hit_rate:.3f}, inference-perf run "
          f"{peer_hit_rate:.3f} (TTFTs compare only where these agree)")
    for label, values in (("server TTFT, our run", server), ("server TTFT, i-p run", peer_server)):
        if values:
            print(
                f"{label:28}{len(values):>6}{np.median(values) * ms:>14.2f}"
                f"{np.percentile(values, 90) * ms:>14.2f}"
            )
    if server:
        gap = (p50 - float(np.median(server))) * ms
        print(f"client TTFT p50 - server TTFT p50 = {gap:.2f} ms   (goal: <= 3 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
