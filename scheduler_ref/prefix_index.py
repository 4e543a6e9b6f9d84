"""Approximate prefix-cache index (EPP.md §4): chained xxhash64 over character blocks.

The index records what the scheduler *chose* (PreRequest), not what servers cached: a map
block-hash -> endpoints plus one LRU per endpoint whose eviction updates the map. The hot
loops pre-bind locals: a decision on an 8,000-char prompt must stay far
below a millisecond.
"""

from __future__ import annotations

from collections import OrderedDict

import xxhash

__all__ = ["PrefixIndex", "block_hashes"]

_xxh64 = xxhash.xxh64_intdigest


def block_hashes(data: bytes, seed: bytes, block_size: int, max_blocks: int) -> list[int]:
    """Chained hashes of the full ``block_size`` blocks of ``data`` (at most ``max_blocks``).

    h0 = xxh64(seed), h_i = xxh64(block_i || le_u64(h_{i-1})); a trailing partial block is not
    hashed, so a prompt shorter than one block yields no hashes.
    """
    if block_size <= 0:
        return []
    n = min(len(data) // block_size, max_blocks)
    if n <= 0:
        return []
    h = _xxh64(seed)
    out = [0] * n
    xxh, bs = _xxh64, block_size
    off = 0
    for i in range(n):
        # slicing + concatenation beats a reused bytearray + pack_into in CPython
        h = xxh(data[off : off + bs] + h.to_bytes(8, "little"))
        out[i] = h
        off += bs
    return out


class PrefixIndex:
    """hash -> endpoint keys, with a bounded LRU of hashes per endpoint.

    The per-hash endpoint collections are ``{key: None}`` dicts, not sets: dicts holding only
    strings are untracked by the cyclic GC, so a large index does not cause collector pauses.
    """

    __slots__ = ("_cap", "_lru", "_map", "entries")

    def __init__(self) -> None:
        self._map: dict[int, dict[str, None]] = {}
        self._lru: dict[str, OrderedDict[int, None]] = {}
        self._cap: dict[str, int] = {}
        self.entries = 0  # total (endpoint, hash) pairs held: the indexer size

    def __len__(self) -> int:
        return len(self._map)

    def match(self, hashes: list[int]) -> dict[str, int]:
        """Blocks each endpoint holds, walking in order until a block no endpoint has."""
        counts: dict[str, int] = {}
        get = self._map.get
        prev: dict[str, None] | None = None
        run = 0
        for h in hashes:
            eps = get(h)
            if not eps:
                break
            if eps == prev:
                run += 1
                continue
            if prev is not None:
                for ep in prev:
                    counts[ep] = counts.get(ep, 0) + run
            prev = dict(eps)
            run = 1
        if prev is not None:
            for ep in prev:
                counts[ep] = counts.get(ep, 0) + run
        return counts

    def add(self, hashes: list[int], key: str, capacity: int) -> None:
        """Record ``hashes`` for endpoint ``key``; evict its least recently used beyond its
        capacity, which is fixed when the endpoint is first recorded (as GAIE's LRU size)."""
        lru = self._lru.get(key)
        if lru is None:
            lru = self._lru[key] = OrderedDict()
            self._cap[key] = capacity
        capacity = self._cap[key]
        m = self._map
        get = m.get
        touch = lru.move_to_end
        before = len(lru)
        for h in hashes:
            if h in lru:
                touch(h)
                continue
            lru[h] = None
            s = get(h)
            if s is None:
                m[h] = {key: None}
            else:
                s[key] = None
        if capacity > 0 and len(lru) > capacity:
            pop = lru.popitem
            for _ in range(len(lru) - capacity):
                old, _ = pop(last=False)
                s = get(old)
                if s is not None:
                    s.pop(key, None)
                    if not s:
                        del m[old]
        self.entries += len(lru) - before

    def _unmap(self, h: int, key: str) -> None:
        s = self._map.get(h)
        if s is not None:
            s.pop(key, None)
            if not s:
                del self._map[h]

    def purge(self, keep: set[str]) -> None:
        """Forget endpoints not in ``keep`` (they left the pool)."""
        for key in [k for k in self._lru if k not in keep]:
            lru = self._lru.pop(key)
            self._cap.pop(key, None)
            for h in lru:
                self._unmap(h, key)
            self.entries -= len(lru)

    def endpoint_size(self, key: str) -> int:
        lru = self._lru.get(key)
        return len(lru) if lru is not None else 0
