"""The pure scheduling cycle with the default config: locality, spread, load, staleness."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from scheduler_ref.types import SchedulingError
from tests.support.scheduler_inputs import NOW, endpoint, endpoints, request, scheduler

SYSTEM = "You are a helpful assistant. " * 100  # ~2,900 chars shared prefix


def _prompt(i: int, rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghij ") for _ in range(600)) + f" #{i}"


def test_shared_long_prefix_goes_to_the_same_endpoint() -> None:
    s = scheduler()
    eps = endpoints(8)
    first = s.schedule(request(SYSTEM + "question one"), eps, NOW)
    second = s.schedule(request(SYSTEM + "another question"), eps, NOW)
    assert second.picked == first.picked
    assert second.prefix_match_blocks[first.picked] == len(SYSTEM) // 64
    assert second.scores[first.picked]["prefix-cache-scorer"] > 0.9


def test_distinct_prefixes_spread() -> None:
    # 200 distinct prompts over 8 idle endpoints: ties break at random, so every endpoint is
    # used and none takes more than 3x its fair share (25); p(fail) is negligible.
    s = scheduler(seed=1)
    eps = endpoints(8)
    rng = random.Random(2)
    picks = Counter(s.schedule(request(_prompt(i, rng)), eps, NOW).picked for i in range(200))
    assert len(picks) == 8
    assert max(picks.values()) <= 75


def test_deep_queue_moves_new_requests_away() -> None:
    s = scheduler()
    eps = endpoints(4)
    warm = s.schedule(request(SYSTEM + "warm"), eps, NOW).picked
    loaded = [endpoint(int(e.key.split(".")[3].split(":")[0]),
                       waiting=40 if e.key == warm else 0, kv_usage=0.9 if e.key == warm else 0.1)
              for e in eps]
    d = s.schedule(request(SYSTEM + "next"), loaded, NOW)
    assert d.picked != warm
    assert d.scores[warm]["prefix-cache-scorer"] > 0.9
    assert d.scores[warm]["queue-scorer"] == 0.0


def test_stale_endpoint_is_not_picked_and_none_fresh_is_503() -> None:
    s = scheduler(staleness=2.0)
    stale = endpoint(1, metrics_time=NOW - 5)
    fresh = endpoint(2, waiting=50, kv_usage=0.99)
    for _ in range(20):
        assert s.schedule(request("x" * 200), [stale, fresh], NOW).picked == fresh.key
    with pytest.raises(SchedulingError) as info:
        s.schedule(request("x"), [stale, endpoint(3, metrics_time=None)], NOW)
    assert info.value.http_status == 503


def test_decision_carries_scores_totals_and_log_record() -> None:
    s = scheduler()
    d = s.schedule(request("hello " * 40, rid="abc"), endpoints(3), NOW)
    rec = d.log_record()
    assert rec["msg"] == "decision" and rec["request_id"] == "abc"
    assert set(rec["scores"]) == {e.key for e in endpoints(3)}
    row = rec["scores"][d.picked]
    assert row["total"] == pytest.approx(
        2 * row["queue-scorer"] + 2 * row["kv-cache-utilization-scorer"]
        + 3 * row["prefix-cache-scorer"])


def test_subset_hint_restricts_and_empty_match_is_503() -> None:
    s = scheduler()
    eps = endpoints(3)
    d = s.schedule(request("q" * 100), eps, NOW, subset=["10.0.0.2:8000"])
    assert d.picked == "10.0.0.2:8000"
    with pytest.raises(SchedulingError) as info:
        s.schedule(request("q"), eps, NOW, subset=["10.9.9.9:8000"])
    assert info.value.http_status == 503


def test_filter_leaving_nothing_fails_the_profile_with_429() -> None:
    s = scheduler("plugins: [{type: prefill-filter}, {type: queue-scorer}]")
    with pytest.raises(SchedulingError) as info:
        s.schedule(request("q"), endpoints(2), NOW)
    assert info.value.http_status == 429


def test_sheddable_request_is_refused_with_429_only_while_saturated() -> None:
    s = scheduler("plugins: [{type: utilization-detector}, {type: queue-scorer}]")
    busy = endpoints(2, waiting=10)  # queue 10 / threshold 5 -> saturation 2.0
    with pytest.raises(SchedulingError) as info:
        s.schedule(request("q", priority=-1), busy, NOW)
    assert info.value.http_status == 429
    assert info.value.code == "InferencePoolResourceExhausted"
    assert s.schedule(request("q"), busy, NOW).picked  # priority 0 is never shed
    calm = endpoints(2, waiting=1, kv_usage=0.1)  # saturation max(0.2, 0.125) < 1
    assert s.schedule(request("q", priority=-1), calm, NOW).picked


def test_endpoints_leaving_are_purged_from_the_index() -> None:
    s = scheduler()
    eps = endpoints(2)
    d = s.schedule(request(SYSTEM), eps, NOW)
    assert s.prefix_index_size() > 0
    s.endpoints_changed({e.key for e in eps if e.key != d.picked})
    assert s.prefix_index_size() == 0
