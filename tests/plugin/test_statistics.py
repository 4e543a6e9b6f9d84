"""Bootstrap intervals and verdicts on synthetic samples whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.statistics import (
    FAILED,
    INCONCLUSIVE,
    PASSED,
    Interval,
    at_most,
    bootstrap_percentile,
    bootstrap_percentile_ratio,
    bootstrap_relative_difference,
    within,
)


def _lognormal(seed: int, n: int, scale: float = 1.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(scale * rng.lognormal(mean=np.log(0.1), sigma=0.4, size=n))


def test_constant_samples_give_the_exact_ratio() -> None:
    interval = bootstrap_percentile_ratio([1.0] * 50, [2.0] * 50, 90)
    assert (interval.estimate, interval.low, interval.high) == (0.5, 0.5, 0.5)
    assert at_most(interval, 0.5) == PASSED  # on the threshold is within it


def test_a_scheduler_three_times_faster_passes_the_half_ratio() -> None:
    interval = bootstrap_percentile_ratio(_lognormal(1, 300, 0.3), _lognormal(2, 300), 90)
    assert 0.2 < interval.low <= interval.estimate <= interval.high < 0.45
    assert at_most(interval, 0.5) == PASSED


def test_negative_control_a_scheduler_no_better_than_baseline_fails() -> None:
    interval = bootstrap_percentile_ratio(_lognormal(3, 300), _lognormal(4, 300), 90)
    assert interval.low > 0.5, interval.describe()
    assert at_most(interval, 0.5) == FAILED


def test_a_ratio_near_the_threshold_on_few_samples_is_inconclusive() -> None:
    interval = bootstrap_percentile_ratio(_lognormal(5, 25, 0.5), _lognormal(6, 25), 90)
    assert interval.low < 0.5 < interval.high, interval.describe()
    assert at_most(interval, 0.5) == INCONCLUSIVE


def test_interval_covers_the_true_ratio_about_95_percent_of_the_time() -> None:
    # Same shape, scale 0.5: the true p90 ratio is exactly 0.5.
    covered = sum(
        interval.low <= 0.5 <= interval.high
        for trial in range(60)
        for interval in [bootstrap_percentile_ratio(_lognormal(1000 + trial, 200, 0.5),
                                                    _lognormal(2000 + trial, 200), 90,
                                                    seed=trial, resamples=500)])
    assert 51 <= covered <= 60  # 85-100 %: a 95 % interval, within binomial noise


def test_equal_control_runs_are_equivalent() -> None:
    interval = bootstrap_relative_difference(_lognormal(7, 300), _lognormal(8, 300), 50)
    assert -0.25 <= interval.low < 0 < interval.high <= 0.25, interval.describe()
    assert within(interval, 0.25) == PASSED


def test_negative_control_a_control_twice_as_slow_fails_equivalence() -> None:
    interval = bootstrap_relative_difference(_lognormal(9, 150, 2.0), _lognormal(10, 150), 50)
    assert 0.7 < interval.estimate < 1.3
    assert within(interval, 0.25) == FAILED
    faster = bootstrap_relative_difference(_lognormal(11, 150, 0.5), _lognormal(12, 150), 50)
    assert within(faster, 0.25) == FAILED


def test_a_control_difference_straddling_the_bound_is_inconclusive() -> None:
    # The false failure: 179 ms vs 124 ms p50 on a noisy machine, few samples.
    interval = bootstrap_relative_difference(_lognormal(13, 40, 1.25), _lognormal(14, 40), 50)
    assert interval.low < 0.25 < interval.high, interval.describe()
    assert within(interval, 0.25) == INCONCLUSIVE


def test_same_seed_same_interval_and_report_fields() -> None:
    a, b = _lognormal(15, 100), _lognormal(16, 100)
    first = bootstrap_percentile_ratio(a, b, 90, seed=3)
    assert first == bootstrap_percentile_ratio(a, b, 90, seed=3)
    data = first.to_dict()
    assert data["samples"] == [100, 100] and data["confidence"] == 0.95
    assert "2000 resamples" in data["method"]


def test_verdicts_on_hand_made_intervals() -> None:
    def interval(low: float, high: float) -> Interval:
        return Interval("x", (low + high) / 2, low, high, (10, 10))

    assert [at_most(interval(lo, hi), 0.5) for lo, hi in [(0.1, 0.4), (0.4, 0.6), (0.6, 0.9)]] \
        == [PASSED, INCONCLUSIVE, FAILED]
    assert [within(interval(lo, hi), 0.25) for lo, hi in
            [(-0.1, 0.1), (0.1, 0.3), (0.3, 0.5), (-0.5, -0.3), (-0.3, 0.3)]] \
        == [PASSED, INCONCLUSIVE, FAILED, FAILED, INCONCLUSIVE]


def test_empty_side_is_an_error() -> None:
    with pytest.raises(ValueError, match="both sides need samples"):
        bootstrap_percentile_ratio([], [1.0], 90)


def test_one_sided_percentile_interval_against_a_bound() -> None:
    """A TTFT p90 well under its SLO passes, well over fails, near it on few samples is open."""
    fast = bootstrap_percentile(_lognormal(5, 200), 90, seed=1)  # p90 ~0.17 s
    assert fast.samples == (200,) and fast.low <= fast.estimate <= fast.high
    assert at_most(fast, 0.25) == PASSED
    assert at_most(bootstrap_percentile(_lognormal(6, 200, 3.0), 90), 0.25) == FAILED
    near = bootstrap_percentile(_lognormal(7, 12), 90)
    assert at_most(near, near.estimate) == INCONCLUSIVE
    assert "n=12)" in near.describe()
    with pytest.raises(ValueError, match="no samples"):
        bootstrap_percentile([], 90)
