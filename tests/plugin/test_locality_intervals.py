"""The locality figures' intervals on synthetic requests whose answer is known: hit rate over
requests, stickiness over prefix groups, balance over requests — each failed only when the
whole interval is on the wrong side, inconclusive when too few samples straddle the bound."""

from __future__ import annotations

import random

from fixtures.routing_verdicts import balance_guard, stickiness_guard
from fixtures.statistics import FAILED, INCONCLUSIVE, PASSED, at_least, bootstrap_statistic
from loadtests.samples import Sample


def _request(i: int, group: str, pod: str, cached: int = 0, prompt: int = 100) -> Sample:
    return Sample(i, group, "completions", True, "u", float(i), status=200, pod=pod,
                  cached_tokens=cached, prompt_tokens=prompt)


def test_a_token_weighted_rate_interval_brackets_its_estimate() -> None:
    pairs = [(90, 100)] * 150 + [(0, 100)] * 10
    interval = bootstrap_statistic(pairs, lambda p: sum(c for c, _ in p) / sum(t for _, t in p),
                                   "hit rate")
    assert interval.low <= interval.estimate == 13500 / 16000 <= interval.high
    assert at_least(interval, 0.8) == PASSED
    assert at_least(interval, 0.95) == FAILED  # negative control: the bound it cannot meet


def test_sticky_groups_pass_and_scattered_groups_fail_the_stickiness_interval() -> None:
    sticky = [_request(i, f"g{i % 10}", f"pod-{i % 10 % 4}") for i in range(200)]
    rng = random.Random(3)
    scattered = [_request(i, f"g{i % 10}", f"pod-{rng.randrange(4)}") for i in range(200)]
    judged = stickiness_guard(sticky, scattered)
    assert judged is not None
    guard, _ = judged
    assert guard.outcome == PASSED and guard.interval is not None, guard.message
    control = stickiness_guard(scattered)
    assert control is not None
    assert control[0].outcome == FAILED, control[0].message


def test_few_groups_near_the_stickiness_bound_are_inconclusive() -> None:
    """Four groups, two fully sticky and two split 60/40: the mean (0.8) sits on the bound
    and four groups cannot decide it."""
    requests = []
    for g, pods in enumerate((["a"] * 10, ["b"] * 10, ["a"] * 6 + ["c"] * 4,
                              ["b"] * 6 + ["d"] * 4)):
        requests += [_request(g * 10 + i, f"g{g}", pod) for i, pod in enumerate(pods)]
    judged = stickiness_guard(requests)
    assert judged is not None and judged[0].outcome == INCONCLUSIVE, judged


def test_one_pod_taking_everything_fails_the_balance_interval() -> None:
    piled = [_request(i, "hot", "pod-0" if i % 10 else "pod-1") for i in range(100)]
    judged = balance_guard(piled, ["pod-0", "pod-1", "pod-2", "pod-3"])
    assert judged is not None
    assert judged[0].outcome == FAILED, judged[0].message
    even = [_request(i, "g", f"pod-{i % 4}") for i in range(100)]
    judged = balance_guard(even, ["pod-0", "pod-1", "pod-2", "pod-3"])
    assert judged is not None
    assert judged[0].outcome == PASSED, judged[0].message
