"""The replay helper: picks, scores and the tie rule on quiescent endpoints."""

from __future__ import annotations

from sched_support import DATA

from scheduler_ref.config import load_config_file
from scheduler_ref.replay import ReplayRequest, quiescent_endpoints, replay

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
