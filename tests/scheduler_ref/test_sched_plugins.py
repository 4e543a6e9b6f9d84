"""Each plugin's scoring / filtering / picking rule on hand-made endpoints."""

from __future__ import annotations

import base64
import random
from collections import Counter

import pytest

from scheduler_ref.params import ParamError, Params
from scheduler_ref.plugins.register import create
from scheduler_ref.types import Endpoint
from tests.support.scheduler_inputs import NOW, endpoint, request


def _plugin(ptype: str, **params: object) -> object:
    return create(ptype, ptype, Params(params))


def _scores(ptype: str, eps: list[Endpoint], **params: object) -> list[float]:
    p = _plugin(ptype, **params)
    return p.score(request("x"), eps, {}, NOW)  # type: ignore[attr-defined, no-any-return]


def test_queue_scorer_min_max() -> None:
    eps = [endpoint(1, waiting=0), endpoint(2, waiting=5), endpoint(3, waiting=10)]
    assert _scores("queue-scorer", eps) == [1.0, 0.5, 0.0]
    assert _scores("queue-scorer", eps[:1] * 3) == [1.0, 1.0, 1.0]


def test_kv_cache_scorers() -> None:
    eps = [endpoint(1, kv_usage=0.25)]
    assert _scores("kv-cache-utilization-scorer", eps) == [0.75]
    assert _scores("kv-cache-scorer", eps) == [0.75]


def test_load_aware_scorer() -> None:
    eps = [endpoint(1, waiting=0), endpoint(2, waiting=64), endpoint(3, waiting=500)]
    assert _scores("load-aware-scorer", eps) == [0.5, 0.25, 0.0]
    with pytest.raises(ParamError):
        _plugin("load-aware-scorer", threshold=0)


def test_lora_affinity_scorer() -> None:
    eps = [
        endpoint(1, running_adapters=frozenset({"m"}), max_lora=2),
        endpoint(2, running_adapters=frozenset({"a"}), max_lora=2),
        endpoint(3, running_adapters=frozenset({"a", "b"}), waiting_adapters=frozenset({"m"}),
                 max_lora=2),
        endpoint(4, running_adapters=frozenset({"a", "b"}), max_lora=2),
    ]
    assert _scores("lora-affinity-scorer", eps) == [1.0, 0.8, 0.6, 0.0]


def test_active_request_scorer_tracks_its_own_inflight() -> None:
    p = _plugin("active-request-scorer", requestTimeout="10s")
    a, b = endpoint(1), endpoint(2)
    for i in range(2):
        p.pre_request(request("x", rid=f"r{i}"), a, {}, NOW)  # type: ignore[attr-defined]
    assert p.score(request("x"), [a, b], {}, NOW) == [0.0, 1.0]  # type: ignore[attr-defined]
    p.response_complete(request("x", rid="r0"), a.key, NOW)  # type: ignore[attr-defined]
    assert p.score(request("x"), [a, b], {}, NOW) == [0.0, 1.0]  # type: ignore[attr-defined]
    assert p.score(request("x"), [a, b], {}, NOW + 11) == [1.0, 1.0]  # type: ignore[attr-defined]


def test_session_affinity_scorer() -> None:
    p = _plugin("session-affinity-scorer")
    a = endpoint(1, namespace="ns")
    b = endpoint(2, namespace="ns")
    token = base64.b64encode(b"ns/pod-2").decode()
    req = request("x", headers={"x-session-token": token})
    assert p.score(req, [a, b], {}, NOW) == [0.0, 1.0]  # type: ignore[attr-defined]
    bad = request("x", headers={"x-session-token": "%%%"})
    assert p.score(bad, [a, b], {}, NOW) == [0.0, 0.0]  # type: ignore[attr-defined]
    assert p.response_headers(req, b) == {"x-session-token": token}  # type: ignore[attr-defined]


def test_no_hit_lru_scorer_prefers_least_recently_used_for_cold_requests() -> None:
    p = _plugin("no-hit-lru-scorer")
    a, b, c = endpoint(1), endpoint(2), endpoint(3)
    st: dict[str, object] = {}
    assert p.score(request("x"), [a, b, c], st, NOW) == [1.0, 0.5, 0.0]  # type: ignore
    p.pre_request(request("x"), a, st, NOW)  # type: ignore[attr-defined]
    assert p.score(request("x"), [a, b, c], {}, NOW)[0] == 0.0  # type: ignore[attr-defined]
    assert p.score(request("x"), [a, b], {"prefix.matches": {"x": 1}}, NOW) == [0.5, 0.5]  # type: ignore


def test_label_filters() -> None:
    d = endpoint(1, labels={"llm-d.ai/role": "decode"})
    pf = endpoint(2, labels={"llm-d.ai/role": "prefill"})
    both = endpoint(3, labels={"llm-d.ai/role": "both", "tier": "gold"})
    none = endpoint(4)
    eps = [d, pf, both, none]

    def keep(ptype: str, **params: object) -> list[Endpoint]:
        return _plugin(ptype, **params).filter(request("x"), eps, {}, NOW)  # type: ignore

    assert keep("decode-filter") == [d, both, none]
    assert keep("prefill-filter") == [pf]
    assert keep("by-label", label="tier", validValues=["gold"]) == [both]
    assert keep("by-label-selector", matchLabels={"tier": "gold"}) == [both]
    assert keep("by-label-selector", matchExpressions=[
        {"key": "llm-d.ai/role", "operator": "NotIn", "values": ["prefill"]}]) == [d, both, none]
    with pytest.raises(ParamError):
        _plugin("by-label")


def test_max_score_picker_breaks_ties_at_random() -> None:
    # 3 tied endpoints, 3,000 picks: each expected 1,000; tolerance +-150 (> 5 sigma).
    p = _plugin("max-score-picker")
    rng = random.Random(3)
    scored = [(endpoint(1), 1.0), (endpoint(2), 1.0), (endpoint(3), 1.0), (endpoint(4), 0.5)]
    picks = Counter(p.pick(scored, rng)[0].key for _ in range(3000))  # type: ignore
    assert endpoint(4).key not in picks
    assert all(850 <= n <= 1150 for n in picks.values()), picks


def test_max_score_picker_with_several_endpoints_orders_by_score() -> None:
    p = _plugin("max-score-picker", maxNumOfEndpoints=3)
    rng = random.Random(5)
    scored = [(endpoint(1), 0.2), (endpoint(2), 0.9), (endpoint(3), 0.5), (endpoint(4), 0.9)]
    # 400 picks: the two tied best come first in either order (each expected 200; +-60 is
    # > 6 sigma), then the 0.5 endpoint; the 0.2 endpoint never makes the cut.
    firsts: Counter[str] = Counter()
    for _ in range(400):
        keys = [e.key for e in p.pick(scored, rng)]  # type: ignore[attr-defined]
        assert set(keys[:2]) == {endpoint(2).key, endpoint(4).key} and keys[2] == endpoint(3).key
        firsts[keys[0]] += 1
    assert all(140 <= n <= 260 for n in firsts.values()), firsts


def test_random_and_weighted_pickers() -> None:
    rng = random.Random(4)
    scored = [(endpoint(1), 3.0), (endpoint(2), 1.0), (endpoint(3), 0.0)]
    rp = _plugin("random-picker", maxNumOfEndpoints=2)
    assert len(rp.pick(scored, rng)) == 2  # type: ignore[attr-defined]
    # weighted: 4,000 draws, expected 3,000 vs 1,000, tolerance +-200 (> 6 sigma); zero never
    wp = _plugin("weighted-random-picker")
    picks = Counter(wp.pick(scored, rng)[0].key for _ in range(4000))  # type: ignore
    assert abs(picks[endpoint(1).key] - 3000) <= 200
    assert endpoint(3).key not in picks


def test_utilization_detector() -> None:
    p = _plugin("utilization-detector")
    eps = [endpoint(1, waiting=10), endpoint(2, kv_usage=0.4), endpoint(3, metrics_time=None)]
    assert p.saturation(eps, NOW) == pytest.approx((2.0 + 0.5 + 1.0) / 3)  # type: ignore


def test_prefix_scorer_autotune_uses_cache_config_info() -> None:
    p = _plugin("prefix-cache-scorer")
    eps = [endpoint(1, block_size=32, num_gpu_blocks=5)]
    st: dict[str, object] = {}
    p.score(request("y" * 1280), eps, st, NOW)  # type: ignore[attr-defined]
    assert st["prefix.block_size"] == 128 and len(st["prefix.hashes"]) == 10  # type: ignore
    p.pre_request(request("y"), eps[0], st, NOW)  # type: ignore[attr-defined]
    assert p.index.endpoint_size(eps[0].key) == 5  # type: ignore[attr-defined]


def test_no_hit_lru_ranks_by_the_whole_lru_as_llm_d() -> None:
    """v0.7.1: never-used first in candidate order, then used by position in the whole LRU
    (oldest first), including endpoints that are no longer candidates; clamped at 0."""
    p = _plugin("no-hit-lru-scorer")
    a, b, c, gone = endpoint(1), endpoint(2), endpoint(3), endpoint(9)
    for e in (gone, b, a):  # LRU oldest -> newest: gone, b, a
        state: dict[str, object] = {}
        p.score(request("x"), [e], state, NOW)  # type: ignore[attr-defined]
        p.pre_request(request("x"), e, state, NOW)  # type: ignore[attr-defined]
    scores = p.score(request("x"), [a, b, c], {}, NOW)  # type: ignore[attr-defined]
    # c never used -> 1.0; b at LRU position 1 -> 1 - (1+1)/2 = 0; a at 2 -> clamped 0
    assert scores == [0.0, 0.0, 1.0]
    assert p.score(request("x"), [c, gone], {}, NOW) == [1.0, 0.0]  # type: ignore[attr-defined]
