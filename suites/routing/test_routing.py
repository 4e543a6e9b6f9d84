"""Routing: the scheduler keeps prefix locality and balance where round robin cannot.

Sequential probes check the mechanism (same prefix sticks, distinct prefixes spread); the
load comparisons measure its effect on the seeded shared-prefix workload (hit rate,
stickiness, TTFT) against the round-robin baseline, plus a no-sharing control workload where
routing must make no difference. Figures land in the run report with the baseline beside;
the two TTFT comparisons carry a bootstrap interval and a three-way verdict
(``fixtures.routing_verdicts``), repeated once within budget when inconclusive.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import httpx
import pytest

from fixtures.comparison import Comparison, fail_unless_contended
from fixtures.hot_prompt import describe as describe_hot_prompt
from fixtures.hot_prompt import hot_prompt_run
from fixtures.outcomes import FAILED, PASSED, settle, worst
from fixtures.plugin import Evidence, Figure
from fixtures.routing_verdicts import (
    CONTROL_TTFT_TOLERANCE,
    MAX_BASELINE_HIT_RATE,
    MAX_TTFT_P90_RATIO,
    MIN_SCHEDULER_HIT_RATE,
    TTFT_P90_SAMPLES,
    balance_guard,
    control_ttft,
    hit_rate_verdicts,
    steady_ttft,
    stickiness_guard,
    trial_record,
    ttft_p90_ratio,
)
from fixtures.stack import Stack
from fixtures.support import not_supported
from loadtests.locality import stickiness, usage_hit_rate
from loadtests.stats import metric_values, percentiles
from loadtests.workloads import random_words

pytestmark = [pytest.mark.load, pytest.mark.slow]




def _complete(gateway: httpx.Client, stack: Stack, prompt: str) -> str:
    response = gateway.post("/v1/completions", json={
        "model": stack.model, "prompt": prompt, "max_tokens": 2})
    assert response.status_code == 200, f"completion: {response.status_code} {response.text}"
    pod = response.headers.get("x-inference-pod")
    assert pod, "no x-inference-pod header in the response: cannot tell which pod served"
    return pod


@pytest.mark.requires("pod-identity-header")
def test_same_prefix_goes_to_one_pod(gateway: httpx.Client, stack: Stack) -> None:
    """Six requests sharing a 1,024-token prefix, sent one after another, land on one pod."""
    rng = random.Random(7)
    prefix = random_words(rng, 1024)
    pods = [_complete(gateway, stack, f"{prefix} {random_words(rng, 16)}") for _ in range(6)]
    assert len(set(pods)) == 1, f"same-prefix requests spread over pods: {pods}"


@pytest.mark.requires("pod-identity-header")
def test_distinct_prefixes_spread(gateway: httpx.Client, stack: Stack) -> None:
    """Unrelated prompts on idle pods spread over nearly every pod.

    max(24, 6N) prompts, sent one after another, must use at least N - N//4 of the N pods
    (3 of 4). Ties among idle pods are broken at random, so a fair picker leaves m = N//4 + 1
    pods unused with probability at most C(N, m) x (1 - m/N)^requests (union bound over the
    sets of m pods): 3.6e-7 for N = 4, 1.8e-4 for N = 3, 8.9e-9 for N = 8. A failure means
    the picker favours a subset of pods.
    """
    n = len(stack.pods)
    if n < 2:
        pytest.skip("needs at least two pods")
    rng = random.Random(11)
    requests, required = max(24, 6 * n), max(2, n - n // 4)
    pods = Counter(_complete(gateway, stack, random_words(rng, 256)) for _ in range(requests))
    assert len(pods) >= required, (
        f"{requests} distinct prefixes used {len(pods)} of {n} pods (need >= {required}): "
        f"{dict(pods)}")


def test_prefix_cache_hit_rate_beats_round_robin(shared_prefix_comparison: Comparison,
                                                 evidence: Evidence) -> None:
    """The scheduler's hit rate at least 0.8 and round robin's at most 0.5, each judged on
    its 95 % interval over requests (failed only when the whole interval is on the wrong
    side); the pods' counters give the point figures."""
    c = shared_prefix_comparison
    sched, base = c.scheduler.pod_hit_rate, c.baseline.pod_hit_rate
    verdicts = hit_rate_verdicts(c)
    if verdicts is None:  # no usage per request: the counters' point values decide
        outcome = PASSED if sched >= MIN_SCHEDULER_HIT_RATE and base <= MAX_BASELINE_HIT_RATE \
            else FAILED
        interval, message = None, f"scheduler {sched:.3f}, round robin {base:.3f} (point values)"
    else:
        judged_sched, judged_base = verdicts
        outcome = worst([judged_sched.outcome, judged_base.outcome])
        interval = judged_sched.interval.to_dict()
        message = (f"scheduler {judged_sched.interval.describe()} ({judged_sched.outcome}), "
                   f"round robin {judged_base.interval.describe()} ({judged_base.outcome})")
    evidence.figure(Figure("prefix_cache_hit_rate", sched, "ratio", baseline=base,
                           threshold=f">= {MIN_SCHEDULER_HIT_RATE} (baseline <= "
                                     f"{MAX_BASELINE_HIT_RATE})",
                           samples=len(c.scheduler.result.samples), interval=interval,
                           outcome=outcome, workload=_describe(c),
                           note="token-weighted, per-pod counter deltas; interval over "
                                "requests' usage.cached_tokens"))
    settle(outcome, f"prefix-cache hit rate: {message} against >= {MIN_SCHEDULER_HIT_RATE} "
                    f"(round robin <= {MAX_BASELINE_HIT_RATE}: else the workload is too easy "
                    f"to tell routers apart) on {_describe(c)}")


def test_cached_tokens_agree_with_pod_counters(shared_prefix_comparison: Comparison,
                                               evidence: Evidence) -> None:
    """Clients' ``usage.cached_tokens`` and the pods' counters tell the same story (±0.05)."""
    for run in (shared_prefix_comparison.scheduler, shared_prefix_comparison.baseline):
        usage = usage_hit_rate(run.result.samples)
        if usage.value is None:
            not_supported("the pods do not report usage.prompt_tokens_details.cached_tokens")
        from_usage = usage.value
        evidence.figure(Figure(f"usage_hit_rate_{run.label}", from_usage, "ratio",
                               samples=usage.requests,
                               note="sum(cached_tokens) / sum(prompt_tokens)"))
        assert abs(from_usage - run.pod_hit_rate) <= 0.05, (
            f"{run.label}: hit rate from usage.cached_tokens {from_usage:.3f} disagrees with "
            f"the pods' vllm:prefix_cache_* deltas {run.pod_hit_rate:.3f}")


@pytest.mark.requires("pod-identity-header")
def test_stickiness_beats_round_robin(shared_prefix_comparison: Comparison,
                                      evidence: Evidence, stack: Stack) -> None:
    """Each prefix group keeps to its pod; the random-picker negative control fails this."""
    c = shared_prefix_comparison
    judged = stickiness_guard(c.scheduler.result.samples, c.baseline.result.samples)
    base = stickiness(c.baseline.result.samples)
    assert judged and base, "no successful request named its pod (x-inference-pod)"
    guard, sched = judged
    evidence.figure(Figure("top_pod_share_per_group", sched.top_pod_share, "ratio",
                           baseline=base.top_pod_share, samples=sched.groups,
                           threshold=guard.threshold, outcome=guard.outcome,
                           interval=guard.interval.to_dict() if guard.interval else None,
                           note=f"distinct pods per group {sched.distinct_pods:.2f} "
                                f"(baseline {base.distinct_pods:.2f})"))
    settle(guard.outcome, f"prefix groups are not sticky: {guard.message}")


@pytest.mark.requires("pod-identity-header")
def test_load_stays_balanced(shared_prefix_comparison: Comparison, evidence: Evidence,
                             stack: Stack) -> None:
    """Balance guard: no pod takes more than twice its fair share.

    On this 20-group workload a prefix-only scorer passes it too (groups land on pods at
    random): here it catches gross imbalance only. Where it catches prefix-only is the hot
    prompt below.
    """
    judged = balance_guard(shared_prefix_comparison.scheduler.result.samples,
                           [p.name for p in stack.pods])
    assert judged, "no successful request named its pod (x-inference-pod)"
    guard, result = judged
    evidence.figure(Figure("max_pod_share", result.max_share, "ratio",
                           baseline=1 / len(stack.pods), threshold=guard.threshold,
                           outcome=guard.outcome,
                           interval=guard.interval.to_dict() if guard.interval else None,
                           note=f"requests per pod {result.per_pod}"))
    settle(guard.outcome, guard.message)


@pytest.mark.requires("pod-identity-header", "simulator-admin")
def test_a_hot_prompt_is_spread_when_its_pod_queues(stack: Stack, http: httpx.Client,
                                                    run_dir: Path, evidence: Evidence) -> None:
    """Balance guard where it can fail: one prefix sent faster than its pod serves.

    ``fixtures.hot_prompt``: pods cut to two batch slots for the run, the prefix filling
    three quarters of a pod's KV cache. A load-aware scheduler moves requests off the queued
    pod; a prefix-only one keeps them all there and fails (the negative control in
    ``tests/plugin/test_negative_controls.py`` runs this same run on a prefix-only EPP).
    """
    if len(stack.pods) < 2:
        pytest.skip("needs at least two pods")
    workload, result = hot_prompt_run(stack, http, run_dir / "load" / "routing-hot-prompt")
    judged = balance_guard(result.samples, [p.name for p in stack.pods])
    assert judged, "no successful request named its pod (x-inference-pod)"
    guard, shares = judged
    evidence.figure(Figure("hot_prompt_max_pod_share", shares.max_share, "ratio",
                           baseline=1 / len(stack.pods), threshold=guard.threshold,
                           samples=sum(shares.per_pod.values()), outcome=guard.outcome,
                           interval=guard.interval.to_dict() if guard.interval else None,
                           workload=describe_hot_prompt(workload),
                           note=f"requests per pod {shares.per_pod}"))
    settle(guard.outcome, f"a hot prompt piled up on one pod: {guard.message}")


def test_ttft_p90_at_most_half_of_round_robin(shared_prefix_comparison: Comparison,
                                              evidence: Evidence) -> None:
    """The steady-state p90 TTFT ratio's 95 % bootstrap interval must lie at or below 0.5.

    Each prefix group's first request is left out on both sides (a cold miss whichever
    router picks); failed only when the whole interval is above 0.5; inconclusive when it
    still straddles 0.5 after the repeat budget.
    """
    c = shared_prefix_comparison
    sched_p90, base_p90 = (percentiles(ttft, (90,))["p90"] for ttft in steady_ttft(c))
    all_p90 = [percentiles(metric_values(run.result.samples, "ttft"), (90,))["p90"]
               for run in (c.scheduler, c.baseline)]
    judged = ttft_p90_ratio(c)
    evidence.figure(Figure("ttft_p90_seconds", sched_p90, "s", baseline=base_p90,
                           threshold=f"{judged.threshold} x baseline",
                           samples=judged.interval.samples[0], workload=_describe(c),
                           note=f"{TTFT_P90_SAMPLES}; over all requests {all_p90[0]:.4f} s "
                                f"(baseline {all_p90[1]:.4f} s)",
                           interval=judged.interval.to_dict(), outcome=judged.outcome,
                           trials=trial_record(c, ttft_p90_ratio), health=c.health()))
    runs = [run for t in (c.trials or (c,)) for run in (t.scheduler, t.baseline)]
    fail_unless_contended(judged.outcome, [run.cpu for run in runs],
                          f"steady-state TTFT p90 ratio {judged.interval.describe()}")
    settle(judged.outcome, f"steady-state TTFT p90 scheduler/round robin: "
                           f"{judged.interval.describe()} "
                           f"against <= {MAX_TTFT_P90_RATIO} (scheduler {sched_p90 * 1e3:.0f} "
                           f"ms, round robin {base_p90 * 1e3:.0f} ms){_repeated(c)}")


def test_control_workload_routing_makes_no_difference(control_comparison: Comparison,
                                                      evidence: Evidence) -> None:
    """With no shared prefixes, both routers see misses only and similar TTFT.

    Equivalence check on the p50 TTFT relative difference: failed only when its 95 %
    bootstrap interval lies entirely outside +-25 %, inconclusive when it still crosses a
    bound after the repeat budget.
    """
    c = control_comparison
    sched, base = (percentiles(metric_values(run.result.samples, "ttft"), (50,))["p50"]
                   for run in (c.scheduler, c.baseline))
    judged = control_ttft(c)
    evidence.figure(Figure("control_ttft_p50_seconds", sched, "s", baseline=base,
                           threshold=judged.threshold, samples=judged.interval.samples[0],
                           workload=_describe(c), interval=judged.interval.to_dict(),
                           outcome=judged.outcome, trials=trial_record(c, control_ttft),
                           health=c.health()))
    evidence.figure(Figure("control_prefix_cache_hit_rate", c.scheduler.pod_hit_rate, "ratio",
                           baseline=c.baseline.pod_hit_rate))
    assert c.scheduler.pod_hit_rate <= 0.1 and c.baseline.pod_hit_rate <= 0.1, (
        f"the control workload shares prefixes: hit rates {c.scheduler.pod_hit_rate:.2f} / "
        f"{c.baseline.pod_hit_rate:.2f}")
    fail_unless_contended(judged.outcome, [run.cpu for t in (c.trials or (c,))
                                           for run in (t.scheduler, t.baseline)],
                          f"control TTFT p50 difference {judged.interval.describe()}")
    settle(judged.outcome, f"control TTFT scheduler vs round robin: {judged.interval.describe()} "
                           f"against +-{CONTROL_TTFT_TOLERANCE:.0%} (scheduler "
                           f"{sched * 1e3:.0f} ms, round robin {base * 1e3:.0f} ms)"
                           f"{_repeated(c)}")


def _repeated(c: Comparison) -> str:
    """``"; 2 trials pooled (...)"`` when the repeat budget was used, else ``""``."""
    if not c.trials:
        return ""
    seeds = ", ".join(str(t.workload.seed) for t in c.trials)
    return (f"; {c.trial_count} trials pooled (seeds {seeds}; repeated because the first "
            f"was inconclusive)")


def _describe(c: Comparison) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(c.workload.params.items()))
    seeds = "" if c.caches_reset else " (caches not resettable: scheduler run on seed + 1)"
    return (f"{c.workload.type}({params}, seed={c.workload.seed}) at {c.plan.rate}/s"
            f"{seeds}{_repeated(c)}")
