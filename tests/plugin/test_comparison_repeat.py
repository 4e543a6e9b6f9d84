"""The bounded repeat: an inconclusive interval buys one more pooled trial, no more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fixtures.comparison as comparison
from fixtures.comparison import Comparison, RoutedRun, compare_until_decided, pooled
from fixtures.outcomes import FAILED, INCONCLUSIVE, PASSED, Inconclusive, settle
from fixtures.plans import LoadPlan
from fixtures.routing_verdicts import (
    REPEAT_BUDGET,
    control_ttft,
    trial_record,
    ttft_p90_ratio,
    ttft_undecided,
)
from fixtures.statistics import at_most, bootstrap_percentile_ratio
from loadtests.api import LoadResult
from loadtests.samples import Sample
from loadtests.stats import metric_values
from loadtests.validity import Validity
from loadtests.workloads import WorkloadSpec

SEED = 100
PLAN = LoadPlan(source="plan.yaml", rate=10, requests=300, max_duration_s=60, output_len=8)


def _run(label: str, ttfts: list[float], pods: tuple[str, ...] = ("p0", "p1")) -> RoutedRun:
    samples = [Sample(i, f"g{i % 5}", "completions", True, "u", float(i), ttft_s=v, status=200,
                      pod=pods[i % len(pods)]) for i, v in enumerate(ttfts)]
    result = LoadResult(samples=samples, samples_path=Path("samples.jsonl"), exit_code=0,
                        validity=Validity(), log_path=Path("locust.log"), summary={})
    return RoutedRun(label, "http://127.0.0.1:1", result, 0.9 if label == "scheduler" else 0.3)


def _lognormal(seed: int, n: int, scale: float) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(scale * rng.lognormal(mean=np.log(0.1), sigma=0.4, size=n))


def _trial(seed: int, n: int, scale: float) -> Comparison:
    workload = WorkloadSpec("shared_prefix", {}, seed)
    return Comparison(workload, PLAN, _run("scheduler", _lognormal(seed, n, scale)),
                      _run("baseline", _lognormal(seed + 1000, n, 1.0)), True)


class FakeCompare:
    """Stands in for ``compare``: hands out prepared trials, records what it was asked."""

    def __init__(self, trials: list[Comparison]) -> None:
        self.trials = trials
        self.calls: list[tuple[int, Path]] = []

    def __call__(self, stack: Any, http: Any, workload: WorkloadSpec, plan: LoadPlan,
                 out: Path, health: Any = None) -> Comparison:
        self.calls.append((workload.seed, out))
        return self.trials[len(self.calls) - 1]


def _decide(monkeypatch: pytest.MonkeyPatch, trials: list[Comparison]
            ) -> tuple[Comparison, FakeCompare]:
    fake = FakeCompare(trials)
    monkeypatch.setattr(comparison, "compare", fake)
    no_stack: Any = None  # the fake compare never touches the stack or the client
    found = compare_until_decided(no_stack, no_stack, WorkloadSpec("shared_prefix", {}, SEED),
                                  PLAN, Path("load/routing-shared-prefix"), ttft_undecided,
                                  REPEAT_BUDGET)
    return found, fake


def test_a_decided_first_trial_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _trial(SEED, 300, 0.3)
    found, fake = _decide(monkeypatch, [first])
    assert ttft_p90_ratio(first).outcome == PASSED
    assert len(fake.calls) == 1 and found is first
    assert found.trials == () and trial_record(found, ttft_p90_ratio) is None


def test_a_failed_first_trial_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: the repeat is for noise, not a second chance for a real failure."""
    first = _trial(SEED, 300, 1.0)
    found, fake = _decide(monkeypatch, [first])
    assert ttft_p90_ratio(found).outcome == FAILED and len(fake.calls) == 1
    with pytest.raises(AssertionError):
        settle(ttft_p90_ratio(found).outcome, "ratio")


def test_an_inconclusive_first_trial_is_repeated_once_and_decided_on_pooled_requests(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _trial(SEED, 25, 0.4), _trial(SEED + 2, 300, 0.4)
    assert ttft_p90_ratio(first).outcome == INCONCLUSIVE, ttft_p90_ratio(first).interval
    found, fake = _decide(monkeypatch, [first, second])
    assert fake.calls == [(SEED, Path("load/routing-shared-prefix")),
                          (SEED + 2, Path("load/routing-shared-prefix-trial-2"))]
    judged = ttft_p90_ratio(found)
    assert judged.outcome == PASSED, judged.interval.describe()
    # 5 prefix groups per trial: each group's first request is left out on both sides
    assert judged.interval.samples == (315, 315) and judged.interval.trials == 2
    assert judged.interval.to_dict()["trials"] == 2
    assert "2 trials pooled" in judged.interval.describe()
    record = trial_record(found, ttft_p90_ratio)
    assert record is not None
    assert [(r["trial"], r["seed"], r["outcome"]) for r in record] == [
        (1, SEED, INCONCLUSIVE), (2, SEED + 2, PASSED)]


def test_still_inconclusive_after_the_budget_stays_inconclusive(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget is one repeat: a third trial is never run, the answer stays honest."""
    noisy = [_trial(SEED + 2 * k, 20, 0.5) for k in range(3)]
    found, fake = _decide(monkeypatch, noisy)
    assert len(fake.calls) == 1 + REPEAT_BUDGET == 2
    judged = ttft_p90_ratio(found)
    assert judged.outcome == INCONCLUSIVE, judged.interval.describe()
    with pytest.raises(Inconclusive):
        settle(judged.outcome, judged.interval.describe())


def test_pooled_runs_keep_each_trials_prefix_groups_apart() -> None:
    both = pooled([_trial(SEED, 10, 0.4), _trial(SEED + 2, 10, 0.4)])
    groups = {s.group for s in both.scheduler.result.samples}
    assert groups == {f"g{i}" for i in range(5)} | {f"trial2/g{i}" for i in range(5)}
    assert len(both.baseline.result.samples) == 20
    assert both.scheduler.pod_hit_rate == pytest.approx(0.9)
    assert both.trial_count == 2 and both.workload.seed == SEED


def test_the_control_equivalence_is_judged_on_pooled_requests_too() -> None:
    same = pooled([_trial(SEED, 150, 1.0), _trial(SEED + 2, 150, 1.0)])
    judged = control_ttft(same)
    assert judged.interval.samples == (300, 300) and judged.interval.trials == 2
    assert judged.outcome == PASSED, judged.interval.describe()


def _shared_prefix_run(label: str, seed: int, miss_share_after_first: float) -> RoutedRun:
    """20 groups x 15 requests, sent in turn: a group's first request is a cold miss
    (~125 ms); later ones miss with ``miss_share_after_first``, else hit (~30 ms)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(300):
        first = i < 20
        miss = first or rng.random() < miss_share_after_first
        ttft = float(rng.normal(0.125, 0.01) if miss else rng.normal(0.030, 0.004))
        samples.append(Sample(i, f"g{i % 20}", "completions", True, "u", float(i),
                              ttft_s=ttft, status=200, pod="p0"))
    result = LoadResult(samples=samples, samples_path=Path("samples.jsonl"), exit_code=0,
                        validity=Validity(), log_path=Path("locust.log"), summary={})
    return RoutedRun(label, "http://127.0.0.1:1", result, 0.9)


def test_cold_first_requests_do_not_move_the_ttft_verdict() -> None:
    """The measured case: 6.7 % cold first requests plus 2 % slow hits straddle a p90 over
    all requests; left out on both sides, the steady-state ratio is clearly below 0.5."""
    workload = WorkloadSpec("shared_prefix", {}, SEED)
    c = Comparison(workload, PLAN, _shared_prefix_run("scheduler", 1, 0.02),
                   _shared_prefix_run("baseline", 2, 0.65), True)
    everything = bootstrap_percentile_ratio(metric_values(c.scheduler.result.samples, "ttft"),
                                            metric_values(c.baseline.result.samples, "ttft"),
                                            90, seed=SEED)
    assert at_most(everything, 0.5) == INCONCLUSIVE, everything.describe()
    judged = ttft_p90_ratio(c)
    assert judged.outcome == PASSED, judged.interval.describe()
    assert judged.interval.samples == (280, 280)


def test_negative_control_a_router_missing_after_the_first_request_still_fails() -> None:
    workload = WorkloadSpec("shared_prefix", {}, SEED)
    c = Comparison(workload, PLAN, _shared_prefix_run("scheduler", 3, 0.6),
                   _shared_prefix_run("baseline", 4, 0.65), True)
    assert ttft_p90_ratio(c).outcome == FAILED, ttft_p90_ratio(c).interval.describe()
