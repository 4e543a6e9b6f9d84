"""The engine on a fake clock: exact TTFT/ITL from the step model, batching, caching, eviction."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config import EngineConfig
from simulator.engine import Engine, EngineRequest, RequestStatus

BASE, A, B = 10.0, 0.1, 0.5  # ms: step base, per prefill token, per decode sequence
_ids = itertools.count()


def _cfg(**kw: object) -> EngineConfig:
    values: dict[str, object] = dict(step_base_ms=BASE, prefill_ms_per_token=A,
                                     decode_ms_per_seq=B, max_num_seqs=8,
                                     max_num_batched_tokens=2048, num_gpu_blocks=1024)
    values.update(kw)
    return EngineConfig(**values)  # type: ignore[arg-type]


def _req(prompt: list[int], out: int = 4) -> EngineRequest:
    return EngineRequest(f"r{next(_ids)}", prompt, [7] * out)


def _prompt(n: int, salt: int = 0) -> list[int]:
    return [(salt * 7919 + i) % 50_000 for i in range(n)]


def _run(engine: Engine, now: float = 0.0, until: float = math.inf) -> float:
    """Step the engine on a fake clock until idle (or ``until``); returns the final time."""
    outcome = engine.step(now)
    while outcome.next_time is not None and outcome.next_time <= until:
        now = outcome.next_time
        outcome = engine.step(now)
    return now


def ms(x: float) -> float:
    return x / 1000.0


def test_ttft_is_queue_plus_prefill_and_itl_is_decode_step() -> None:
    engine = Engine(_cfg())
    req = _req(_prompt(500), out=3)
    engine.add_request(req, 0.0)
    _run(engine)
    assert req.status is RequestStatus.FINISHED
    assert req.first_token_time == ms(BASE + A * 500)
    assert req.finished_time is not None
    itl = (req.finished_time - req.first_token_time) / 2
    assert math.isclose(itl, ms(BASE + B * 1))
    assert engine.stats.ttft.count == 1
    assert math.isclose(engine.stats.ttft.total, ms(BASE + A * 500))
    assert engine.kv.usage == 0.0


def test_chunked_prefill_spreads_a_long_prompt_over_steps() -> None:
    engine = Engine(_cfg(max_num_batched_tokens=1000))
    req = _req(_prompt(2500), out=1)
    engine.add_request(req, 0.0)
    _run(engine)
    assert req.first_token_time is not None
    assert math.isclose(req.first_token_time, ms(3 * BASE + A * 2500))


def test_second_identical_prompt_hits_every_full_block() -> None:
    engine = Engine(_cfg())
    prompt = _prompt(2003)
    first, second = _req(prompt), _req(prompt)
    engine.add_request(first, 0.0)
    t = _run(engine)
    engine.add_request(second, t)
    _run(engine, t)
    assert first.num_cached_tokens == 0
    assert second.num_cached_tokens == 2000  # 125 full blocks of 16
    assert second.first_token_time is not None
    assert math.isclose(second.first_token_time - t, ms(BASE + A * 3))
    assert engine.stats.prefix_hits == 2000
    assert engine.stats.prefix_queries == 2 * 2003


def test_fully_cached_prompt_still_computes_its_last_block() -> None:
    """vLLM recomputes at least the last token; on a block boundary that is a whole block."""
    engine = Engine(_cfg())
    prompt = _prompt(64)
    a, b = _req(prompt), _req(prompt)
    engine.add_request(a, 0.0)
    t = _run(engine)
    engine.add_request(b, t)
    _run(engine, t)
    assert b.num_cached_tokens == 48


def test_beyond_max_num_seqs_requests_wait_and_ttft_grows_with_the_queue() -> None:
    engine = Engine(_cfg(max_num_seqs=4))
    reqs = [_req(_prompt(100, salt=i), out=20) for i in range(12)]
    for r in reqs:
        engine.add_request(r, 0.0)
    first = engine.step(0.0)
    assert len(engine.running) == 4 and len(engine.waiting) == 8
    assert first.next_time is not None
    _run(engine, first.next_time)
    ttfts = [r.first_token_time or 0.0 for r in reqs]
    assert all(t > 0 for t in ttfts)
    wave = [max(ttfts[i : i + 4]) for i in (0, 4, 8)]
    assert wave[0] < wave[1] < wave[2]
    assert all(r.num_output == 20 for r in reqs)


def test_itl_grows_with_the_batch_as_modelled() -> None:
    for batch in (1, 8):
        engine = Engine(_cfg())
        reqs = [_req(_prompt(16, salt=i), out=10) for i in range(batch)]
        for r in reqs:
            engine.add_request(r, 0.0)
        _run(engine)
        expected = ms(BASE + B * batch)
        assert engine.stats.itl.count == 9 * batch
        assert math.isclose(engine.stats.itl.total / engine.stats.itl.count, expected)


def _hit_rate(num_gpu_blocks: int) -> float:
    """Cycle 8 prefix groups of 256 tokens (16 blocks each) through one pod."""
    engine = Engine(_cfg(num_gpu_blocks=num_gpu_blocks))
    t = 0.0
    for round_ in range(4):
        for group in range(8):
            engine.add_request(_req([*_prompt(256, salt=group), round_, group], out=2), t)
            t = _run(engine, t)
    return engine.stats.prefix_hits / engine.stats.prefix_queries


def test_working_set_larger_than_kv_capacity_lowers_hit_rate() -> None:
    roomy, tight = _hit_rate(1024), _hit_rate(64)  # 8 x 17 blocks fit in 1024, not in 64
    assert roomy > 0.7
    assert tight < roomy / 2


def test_preemption_when_blocks_run_out_and_every_request_still_finishes() -> None:
    engine = Engine(_cfg(num_gpu_blocks=20, block_size=16))
    reqs = [_req(_prompt(64, salt=i), out=100) for i in range(4)]  # each grows to 11 blocks
    for r in reqs:
        engine.add_request(r, 0.0)
    _run(engine)
    assert engine.stats.preemptions > 0
    assert all(r.status is RequestStatus.FINISHED and r.num_output == 100 for r in reqs)
    assert engine.kv.usage == 0.0


def test_speed_factor_scales_step_time() -> None:
    engine = Engine(_cfg(speed_factor=2.0))
    req = _req(_prompt(100), out=1)
    engine.add_request(req, 0.0)
    _run(engine)
    assert req.first_token_time is not None
    assert math.isclose(req.first_token_time, 2 * ms(BASE + A * 100))


def test_abort_frees_blocks() -> None:
    engine = Engine(_cfg())
    req = _req(_prompt(100), out=50)
    engine.add_request(req, 0.0)
    _run(engine, until=0.1)
    assert engine.kv.usage > 0
    engine.abort(req.request_id)
    _run(engine, 0.2)
    assert engine.kv.usage == 0.0 and not engine.busy


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 300), st.integers(1, 40), st.integers(0, 3),
                       st.booleans()), min_size=1, max_size=25),
    st.integers(4, 12),
)
def test_random_workloads_finish_with_consistent_accounting(
    specs: list[tuple[int, int, int, bool]], max_seqs: int
) -> None:
    engine = Engine(_cfg(num_gpu_blocks=48, max_num_seqs=max_seqs, max_num_batched_tokens=256))
    reqs, aborted = [], set()
    now = 0.0
    for i, (plen, out, group, abort) in enumerate(specs):
        r = _req(_prompt(16 * group) + _prompt(plen, salt=i + 10), out=out)
        engine.add_request(r, now)
        reqs.append(r)
        outcome = engine.step(now)
        now = outcome.next_time or now
        if abort and i % 3 == 0:
            engine.abort(r.request_id)
            aborted.add(r.request_id)
        held = sum(len(x.blocks) for x in engine.running)
        assert sum(b.ref_count for b in engine.kv._blocks) == held
        assert len(engine.running) <= max_seqs
    _run(engine, now)
    for r in reqs:
        if r.request_id not in aborted:
            assert r.status is RequestStatus.FINISHED and r.num_output == r.max_output
    assert engine.kv.usage == 0.0 and not engine.running and not engine.waiting
