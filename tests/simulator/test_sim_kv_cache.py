"""KV block pool: prefix lookup, LRU eviction, running blocks never evicted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.kv_cache import Block, KVCache, hash_blocks, prefix_seed

SEED = prefix_seed("m")


def _hashes(tokens: list[int], bs: int = 4) -> list[int]:
    out: list[int] = []
    hash_blocks(tokens, bs, SEED, out, len(tokens) // bs)
    return out


def _hold(kv: KVCache, tokens: list[int]) -> list[Block]:
    """Allocate and cache ``tokens`` as one request would."""
    hashes = _hashes(tokens)
    hits = kv.find_prefix(hashes, len(hashes))
    blocks: list[Block] = []
    assert kv.allocate(blocks, hits, len(tokens))
    kv.cache_blocks(blocks, hashes, len(hits), len(tokens) // kv.block_size)
    return blocks


def test_chained_hashes_depend_on_the_whole_prefix() -> None:
    a = _hashes([1, 2, 3, 4, 5, 6, 7, 8])
    b = _hashes([9, 2, 3, 4, 5, 6, 7, 8])
    assert a[1] != b[1]  # same second block, different parent
    assert _hashes([1, 2, 3, 4]) == a[:1]
    other: list[int] = []
    hash_blocks([1, 2, 3, 4], 4, prefix_seed("other"), other, 1)
    assert other != a[:1]


def test_freed_blocks_stay_cached_until_evicted_lru() -> None:
    kv = KVCache(num_blocks=4, block_size=4)
    first = _hold(kv, list(range(8)))  # 2 blocks
    second = _hold(kv, list(range(100, 108)))  # 2 blocks
    assert kv.usage == 1.0
    kv.free(first)
    kv.free(second)
    assert kv.usage == 0.0 and kv.num_cached == 4
    # Freed tail-first: request one's tail block is evicted first.
    third = _hold(kv, list(range(200, 204)))
    assert kv.find_prefix(_hashes(list(range(8))), 2) == kv.find_prefix(
        _hashes(list(range(8))), 1)
    assert len(kv.find_prefix(_hashes(list(range(100, 108))), 2)) == 2
    kv.free(third)


def test_running_blocks_are_never_evicted() -> None:
    kv = KVCache(num_blocks=3, block_size=4)
    held = _hold(kv, list(range(8)))
    blocks: list[Block] = []
    assert not kv.allocate(blocks, (), 8)  # would need 2, only 1 free
    assert blocks == [] and kv.num_used == 2
    assert len(kv.find_prefix(_hashes(list(range(8))), 2)) == 2
    kv.free(held)


def test_shared_prefix_is_referenced_not_copied() -> None:
    kv = KVCache(num_blocks=8, block_size=4)
    a = _hold(kv, list(range(12)))
    b = _hold(kv, [*range(8), 50, 51, 52, 53])
    assert a[:2] == b[:2] and a[0].ref_count == 2
    assert kv.num_used == 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.integers(1, 20)), max_size=40))
def test_pool_accounting_invariants(ops: list[tuple[bool, int, int]]) -> None:
    kv = KVCache(num_blocks=10, block_size=4)
    held: list[list[Block]] = []
    for alloc, prefix_id, length in ops:
        if alloc:
            tokens = [prefix_id] * 4 + list(range(length))
            hashes = _hashes(tokens)
            hits = kv.find_prefix(hashes, len(hashes))
            blocks: list[Block] = []
            if kv.allocate(blocks, hits, len(tokens)):
                kv.cache_blocks(blocks, hashes, len(hits), len(tokens) // 4)
                held.append(blocks)
        elif held:
            kv.free(held.pop(0))
        refs = sum(len(b) for b in held)
        assert sum(b.ref_count for b in kv._blocks) == refs
        assert kv.num_used == sum(1 for b in kv._blocks if b.ref_count > 0)
        assert 0.0 <= kv.usage <= 1.0
        assert all(b.ref_count > 0 for blocks in held for b in blocks)
