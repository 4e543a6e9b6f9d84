"""Locality from raw samples: hit rate, stickiness, balance."""

from __future__ import annotations

import pytest

from loadtests.locality import after_first_of_each_group, balance, stickiness, usage_hit_rate
from loadtests.samples import Sample


def _sample(i: int, group: str, pod: str, prompt: int = 100, cached: int = 0,
            status: int = 200) -> Sample:
    return Sample(request_id=i, group=group, api="completions", stream=True, url="u", start=0.0,
                  prompt_tokens=prompt, cached_tokens=cached, status=status, pod=pod)


def test_usage_hit_rate_ignores_failed_and_unreported_requests() -> None:
    samples = [_sample(0, "g", "a", 100, 50), _sample(1, "g", "a", 100, 100, status=500)]
    unreported = _sample(2, "g", "a", 100)
    unreported.cached_tokens = None
    rate = usage_hit_rate([*samples, unreported])
    assert rate.value == pytest.approx(0.5) and rate.requests == 1
    assert usage_hit_rate([unreported]).value is None


def test_stickiness_and_balance() -> None:
    samples = [_sample(i, "g0", "a") for i in range(3)] + [_sample(3, "g0", "b")]
    samples += [_sample(4 + i, "g1", "b") for i in range(4)]
    sticky = stickiness(samples)
    assert sticky is not None
    assert sticky.top_pod_share == pytest.approx((0.75 + 1.0) / 2)
    assert sticky.distinct_pods == pytest.approx(1.5)
    bal = balance(samples, ["a", "b", "c"])
    assert bal is not None
    assert bal.per_pod == {"a": 3, "b": 5, "c": 0}
    assert bal.max_share == pytest.approx(5 / 8)


def test_after_first_of_each_group_leaves_out_each_groups_earliest_request() -> None:
    samples = [_sample(i, f"g{i % 2}", "a") for i in range(6)]
    for s, start in zip(samples, (5.0, 1.0, 2.0, 3.0, 4.0, 0.5), strict=True):
        s.start = start
    later = after_first_of_each_group(samples)
    assert sorted(s.request_id for s in later) == [0, 1, 3, 4]  # g0 from 2, g1 from 5 left out
    assert after_first_of_each_group([]) == []
