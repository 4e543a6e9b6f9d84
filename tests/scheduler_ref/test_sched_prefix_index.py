"""The approximate prefix index of EPP.md §4: chain, match, LRU bounds, purge."""

from __future__ import annotations

import xxhash

from scheduler_ref.prefix_index import PrefixIndex, block_hashes


def test_chain_matches_the_spec_formula() -> None:
    data = b"a" * 64 + b"b" * 64 + b"tail"
    hashes = block_hashes(data, b"model", 64, 256)
    h0 = xxhash.xxh64_intdigest(b"model")
    h1 = xxhash.xxh64_intdigest(b"a" * 64 + h0.to_bytes(8, "little"))
    h2 = xxhash.xxh64_intdigest(b"b" * 64 + h1.to_bytes(8, "little"))
    assert hashes == [h1, h2]  # the partial trailing block is not hashed


def test_short_prompt_and_block_limit() -> None:
    assert block_hashes(b"x" * 63, b"m", 64, 256) == []
    assert len(block_hashes(b"x" * 64 * 300, b"m", 64, 256)) == 256


def test_seed_separates_models_and_salts() -> None:
    data = b"p" * 256
    assert block_hashes(data, b"m1", 64, 9)[0] != block_hashes(data, b"m2", 64, 9)[0]


def test_match_stops_at_first_block_no_endpoint_has() -> None:
    idx = PrefixIndex()
    a = block_hashes(b"s" * 640, b"m", 64, 256)  # 10 blocks
    b = block_hashes(b"s" * 320 + b"t" * 320, b"m", 64, 256)  # shares 5
    idx.add(a, "A", 100)
    idx.add(b[:7], "B", 100)
    assert idx.match(a) == {"A": 10, "B": 5}
    assert idx.match(b) == {"A": 5, "B": 7}
    assert idx.match(block_hashes(b"z" * 640, b"m", 64, 256)) == {}


def test_lru_capacity_bounds_size_and_updates_map() -> None:
    idx = PrefixIndex()
    for i in range(50):
        idx.add(block_hashes(f"{i:04d}".encode() * 64, b"m", 64, 256), "A", 100)
    assert idx.endpoint_size("A") == 100
    assert idx.entries == 100
    assert len(idx) == 100
    idx.purge(set())
    assert idx.entries == 0 and len(idx) == 0
