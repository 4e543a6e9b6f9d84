"""The replay helper: picks, scores and the tie rule on quiescent endpoints."""

from __future__ import annotations

import pytest

from scheduler_ref.config import load_config_file
from scheduler_ref.replay import (
    ReplayRequest,
    agreement,
    endpoints_from_metrics,
    quiescent_endpoints,
    replay,
)
from tests.support import DATA

PODS = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"]
GUIDE_CONFIG = DATA / "guide" / "current" / "no-kubernetes" / "config.yaml"


def _completion(prompt: str) -> ReplayRequest:
    return ReplayRequest({"model": "m", "prompt": prompt})


def test_equal_pods_tie_then_prefix_locality_decides() -> None:
    prompt = "shared system prompt " * 20
    first, second = replay([_completion(prompt), _completion(prompt + "more")],
                           quiescent_endpoints(PODS))
    assert first.tied and set(first.top) == set(PODS)
    assert first.picked is not None
    assert not second.tied and second.picked == first.picked
    assert second.scores[first.picked]["prefix-cache-scorer"] > 0.9


def test_kv_usage_breaks_the_symmetry() -> None:
    (pick,) = replay([_completion("x" * 200)], quiescent_endpoints(PODS, [0.5, 0.1, 0.9]))
    assert not pick.tied and pick.picked == PODS[1]
    assert pick.scores[PODS[1]]["kv-cache-utilization-scorer"] == 0.9


def test_no_hit_lru_order_is_a_coin_toss_until_one_pod_is_left() -> None:
    cfg = load_config_file(GUIDE_CONFIG)
    reqs = [_completion(f"{i} distinct prompt " * 20) for i in range(3)]
    a, b, c = replay(reqs, quiescent_endpoints(PODS), cfg)
    # raw totals differ by list order, but which never-used pod comes first is arbitrary
    assert len({round(a.scores[p]["total"], 6) for p in PODS}) == 3
    assert a.tied and set(a.top) == set(PODS)
    assert b.tied and set(b.top) == set(PODS) - {a.picked}
    assert not c.tied and c.picked == (set(PODS) - {a.picked, b.picked}).pop()


def test_refused_requests_are_reported_not_raised() -> None:
    bad, good = replay([ReplayRequest({"model": "m"}), _completion("y" * 100)],
                       quiescent_endpoints(PODS))
    assert bad.picked is None and bad.error.startswith("BadRequest - ")
    assert good.picked in PODS


def test_same_seed_same_picks_and_chat_bodies_work() -> None:
    reqs = [ReplayRequest({"model": "m", "messages": [{"role": "user", "content": f"q{i}" * 50}]})
            for i in range(8)]
    one = [p.picked for p in replay(reqs, quiescent_endpoints(PODS), seed=4)]
    two = [p.picked for p in replay(reqs, quiescent_endpoints(PODS), seed=4)]
    assert one == two and all(p in PODS for p in one)


def _group_sequence() -> list[ReplayRequest]:
    systems = [f"system prompt of group {g} " * 30 for g in range(3)]
    return [_completion(f"{systems[i % 3]} question {i}") for i in range(12)]


def test_following_the_other_side_keeps_prefixes_where_it_put_them() -> None:
    reqs = _group_sequence()
    theirs = [PODS[(i % 3 + 1) % 3] for i in range(len(reqs))]  # group g lives on pod g+1
    picks = replay(reqs, quiescent_endpoints(PODS), follow=theirs)
    found = agreement(picks, theirs)
    assert found.tied == 3  # each group's first request: no prefix anywhere yet
    assert (found.compared, found.agreed, found.share) == (9, 9, 1.0)


def test_agreement_fails_when_the_reference_remembers_prefixes_elsewhere() -> None:
    """Negative control: state recorded on pod g+1 while the other side keeps picking pod g+2."""
    reqs = _group_sequence()
    recorded = [PODS[(i % 3 + 1) % 3] for i in range(len(reqs))]
    theirs = [PODS[(i % 3 + 2) % 3] for i in range(len(reqs))]
    found = agreement(replay(reqs, quiescent_endpoints(PODS), follow=recorded), theirs)
    assert found.compared == 9 and found.agreed == 0 and found.share == 0.0
    assert found.disagreements[0] == (3, PODS[1], PODS[2])


def test_refusals_on_either_side_are_counted_apart() -> None:
    reqs = [ReplayRequest({"model": "m"}), *_group_sequence()[:4]]
    picks = replay(reqs, quiescent_endpoints(PODS))
    theirs: list[str | None] = [None, picks[1].picked, picks[2].picked, picks[3].picked, None]
    found = agreement(picks, theirs)
    assert found.refused == 2 and found.tied == 3 and found.compared == 0
    assert found.share is None  # nothing compared: no evidence, not 100 %


def test_following_an_unknown_endpoint_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"10\.9\.9\.9:1"):
        replay([_completion("z" * 100)], quiescent_endpoints(PODS), follow=["10.9.9.9:1"])
    with pytest.raises(ValueError, match="1 picks for 2 requests"):
        replay([_completion("a"), _completion("b")], quiescent_endpoints(PODS), follow=[None])


def test_endpoints_from_metrics_take_the_pods_published_cache_shape() -> None:
    page = ('vllm:kv_cache_usage_perc{model_name="m"} 0.25\n'
            'vllm:num_requests_waiting{model_name="m"} 0\n'
            'vllm:cache_config_info{block_size="16",num_gpu_blocks="512"} 1.0\n')
    (e,) = endpoints_from_metrics({PODS[0]: page}, {PODS[0]: "sim-0"})
    assert (e.key, e.name, e.kv_usage, e.block_size, e.num_gpu_blocks) == (
        PODS[0], "sim-0", 0.25, 16, 512)
    assert e.metrics_time is not None
