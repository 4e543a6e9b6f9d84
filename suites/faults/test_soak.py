"""Soak: a long bounded run at a moderate rate leaks neither memory nor descriptors.

Two load runs through the gateway on the plan's ``soak`` shape: a warm-up (a sixth of the soak,
at least 10 s), then the soak itself (60 s in ``make test``; ``LAMPLIGHTER_SOAK_SECONDS=600``
nightly). Every stack process (Envoy, the EPP, the simulators) is read from /proc when the
stack is idle after each run, so in-flight requests do not count: resident memory may grow at
most 10 % (+ 4 MiB for allocator granularity), descriptors at most 10 % (+ 4). The EPP's prefix
index must stay within its LRU bound (pods x per-pod capacity; with ``autoTune`` each pod's
``num_gpu_blocks``). Needs the ``process-usage`` feature (local target), else *not supported*.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from fixtures.comparison import run_measured
from fixtures.options import HarnessOptions
from fixtures.outcomes import Invalid
from fixtures.plans import LoadPlan, load_plan, sized_shared_prefix
from fixtures.plugin import Evidence, Figure
from fixtures.podmetrics import cache_config
from fixtures.process_usage import ProcessUsage, read_usage
from fixtures.stack import Stack
from fixtures.upstream_epp import epp_metric_samples
from loadtests.api import LoadResult, LoadSpec
from loadtests.workloads import WorkloadSpec
from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.plugins.prefix_cache_scorer import PrefixCacheScorer

pytestmark = [pytest.mark.faults, pytest.mark.load, pytest.mark.slow, pytest.mark.long]

SEED = 515151
RSS_GROWTH, RSS_SLACK_MIB = 0.10, 4.0
FD_GROWTH, FD_SLACK = 0.10, 4
IDLE_SECONDS = 2.0  # let keep-alive and in-flight work settle before reading /proc
INDEX_METRIC = "inference_extension_prefix_indexer_size"


def _soak_seconds(plan: LoadPlan) -> float:
    raw = os.environ.get("LAMPLIGHTER_SOAK_SECONDS")
    if raw is None:
        return plan.max_duration_s
    try:
        seconds = float(raw)
    except ValueError:
        pytest.fail(f"LAMPLIGHTER_SOAK_SECONDS={raw!r}: expected seconds", pytrace=False)
    if seconds <= 0:
        pytest.fail(f"LAMPLIGHTER_SOAK_SECONDS={raw!r}: must be > 0", pytrace=False)
    return seconds


def _run(stack: Stack, workload: WorkloadSpec, rate: float, seconds: float,
         out: Path) -> LoadResult:
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=rate, users=32,
                    max_requests=max(1, int(rate * seconds)), duration_s=seconds)
    result, _ = run_measured(spec, out, stack, timeout_s=seconds + 60)
    failed = [s for s in result.samples if not s.ok]
    if failed or not result.validity.valid:
        raise Invalid(f"{out.name}: {len(failed)} of {len(result.samples)} requests failed, "
                      f"run valid={result.validity.valid} {result.validity.reasons}: a soak "
                      f"with errors says nothing about leaks (log {result.log_path})")
    return result


def _usage(pids: dict[str, int]) -> dict[str, ProcessUsage]:
    time.sleep(IDLE_SECONDS)
    try:
        return {name: read_usage(pid) for name, pid in pids.items()}
    except ProcessLookupError as exc:
        pytest.fail(f"a stack process died during the soak: {exc}", pytrace=False)


def _index_bound(stack: Stack, http: httpx.Client) -> int:
    config = load_config(stack.scheduler_config or DEFAULT_CONFIG, "<stack>")
    prefix = next(p for p in config.plugins.values() if isinstance(p, PrefixCacheScorer))
    if prefix.auto_tune:
        return sum(c.num_gpu_blocks for c in cache_config(stack, http).values())
    return prefix.capacity * len(stack.pods)


@pytest.mark.requires("process-usage")
def test_a_long_run_leaks_neither_memory_nor_descriptors(
        stack: Stack, http: httpx.Client, harness_options: HarnessOptions, run_dir: Path,
        evidence: Evidence) -> None:
    pids: dict[str, int] = stack.extras["process_pids"]
    plan = load_plan(harness_options.target, "soak")
    seconds = _soak_seconds(plan)
    workload = sized_shared_prefix(plan, stack, http, SEED)
    out = run_dir / "load" / "soak"
    _run(stack, workload, plan.rate, max(10.0, seconds / 6), out / "warmup")
    warm = _usage(pids)
    result = _run(stack, workload, plan.rate, seconds, out / "soak")
    end = _usage(pids)

    grew: list[str] = []
    for name in sorted(pids):
        before, after = warm[name], end[name]
        rss_limit = before.rss_mib * (1 + RSS_GROWTH) + RSS_SLACK_MIB
        fd_limit = int(before.fds * (1 + FD_GROWTH)) + FD_SLACK
        evidence.figure(Figure(f"soak_rss_mib_{name}", round(after.rss_mib, 1), "MiB",
                               baseline=round(before.rss_mib, 1),
                               threshold=f"<= {rss_limit:.1f} (+{RSS_GROWTH:.0%} + "
                                         f"{RSS_SLACK_MIB:g} MiB)",
                               samples=len(result.samples),
                               note=f"after {seconds:.0f} s at {plan.rate:g} req/s; baseline = "
                                    "idle after warm-up"))
        evidence.figure(Figure(f"soak_fds_{name}", after.fds, "fds", baseline=before.fds,
                               threshold=f"<= {fd_limit}"))
        if after.rss_mib > rss_limit:
            grew.append(f"{name}: RSS {before.rss_mib:.1f} -> {after.rss_mib:.1f} MiB "
                        f"(limit {rss_limit:.1f})")
        if after.fds > fd_limit:
            grew.append(f"{name}: descriptors {before.fds} -> {after.fds} (limit {fd_limit})")

    metrics_url = stack.epp_metrics_url
    index = epp_metric_samples(http.get(metrics_url).text, INDEX_METRIC) if metrics_url else []
    bound = _index_bound(stack, http)
    if index:
        entries = sum(v for _, v in index)
        evidence.figure(Figure("soak_prefix_index_entries", entries, "entries",
                               threshold=f"<= {bound} (LRU bound)"))
        assert entries <= bound, f"prefix index {entries:.0f} entries > LRU bound {bound}"
    assert not grew, "grew during the soak:\n" + "\n".join(grew)
