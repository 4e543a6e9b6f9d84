"""KV blocks with automatic prefix caching, as vLLM's V1 block pool keeps them.

- A full block is keyed by a chained hash: xxh64(parent hash ‖ token ids), seeded per model
  (and LoRA adapter), so equal prefixes map to equal keys and nothing else does.
- Blocks referenced by running requests are never evicted. A freed block keeps its hash and
  stays findable; it joins the tail of an LRU free queue and is evicted (its hash dropped)
  only when the pool hands it out again. A request's blocks are freed tail-first, so the
  end of a prompt is evicted before its shared beginning, as in vLLM.
- Usage (``vllm:kv_cache_usage_perc``) = blocks referenced by requests / capacity; cached but
  unreferenced blocks count as free, which is vLLM's definition.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Sequence

import xxhash

__all__ = ["Block", "KVCache", "hash_blocks", "prefix_seed"]


def prefix_seed(model: str, lora: str | None = None) -> int:
    """Hash seed for a model (and adapter): caches of different models never match."""
    key = model if lora is None else f"{model}\x00lora:{lora}"
    return xxhash.xxh64_intdigest(key.encode())


def hash_blocks(
    token_ids: Sequence[int], block_size: int, seed: int, parents: list[int], upto: int
) -> None:
    """Extend ``parents`` (hashes of the leading full blocks) to cover ``upto`` full blocks."""
    parent = parents[-1] if parents else seed
    for i in range(len(parents), upto):
        chunk = array("I", token_ids[i * block_size : (i + 1) * block_size]).tobytes()
        parent = xxhash.xxh64_intdigest(parent.to_bytes(8, "little") + chunk, seed=seed)
        parents.append(parent)


class Block:
    """One physical block: its id, the content hash when full and cached, its users."""

    __slots__ = ("block_hash", "block_id", "ref_count")

    def __init__(self, block_id: int) -> None:
        self.block_id = block_id
        self.block_hash: int | None = None
        self.ref_count = 0


class KVCache:
    """A fixed pool of ``num_blocks`` blocks of ``block_size`` tokens."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._blocks = [Block(i) for i in range(num_blocks)]
        # Unreferenced blocks in eviction order (front = evicted first).
        self._free: OrderedDict[int, Block] = OrderedDict((b.block_id, b) for b in self._blocks)
        self._cached: dict[int, Block] = {}
        self.evictions = 0

    # -- queries -------------------------------------------------------------------------------
    @property
    def num_free(self) -> int:
        """Blocks that can be handed out (empty or cached-but-unreferenced)."""
        return len(self._free)

    @property
    def num_used(self) -> int:
        """Blocks referenced by at least one request."""
        return self.num_blocks - len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks referenced by requests (vLLM's ``kv_cache_usage_perc``)."""
        return self.num_used / self.num_blocks

    @property
    def num_cached(self) -> int:
        """Blocks findable by hash (referenced or not)."""
        return len(self._cached)

    def find_prefix(self, hashes: Sequence[int], max_blocks: int) -> list[Block]:
        """The longest run of leading blocks present in the cache (at most ``max_blocks``)."""
        found: list[Block] = []
        cached = self._cached
        for h in hashes[:max_blocks]:
            block = cached.get(h)
            if block is None:
                break
            found.append(block)
        return found

    def blocks_needed(self, num_tokens: int) -> int:
        """Blocks that hold ``num_tokens`` tokens."""
        return -(-num_tokens // self.block_size)

    # -- mutations -----------------------------------------------------------------------------
    def can_allocate(self, held: int, hits: Sequence[Block], num_tokens: int) -> bool:
        """Whether a request holding ``held`` blocks can grow to ``num_tokens`` tokens."""
        idle_hits = sum(1 for b in hits if b.ref_count == 0)
        new = self.blocks_needed(num_tokens) - held - len(hits)
        return new + idle_hits <= len(self._free)

    def allocate(self, blocks: list[Block], hits: Sequence[Block], num_tokens: int) -> bool:
        """Grow a request's ``blocks`` by the cache ``hits`` then fresh blocks for ``num_tokens``.

        Returns False (and changes nothing) when the pool cannot supply the blocks.
        """
        if not self.can_allocate(len(blocks), hits, num_tokens):
            return False
        for block in hits:
            if block.ref_count == 0:
                del self._free[block.block_id]
            block.ref_count += 1
            blocks.append(block)
        for _ in range(self.blocks_needed(num_tokens) - len(blocks)):
            _, block = self._free.popitem(last=False)
            if block.block_hash is not None:
                if self._cached.get(block.block_hash) is block:
                    del self._cached[block.block_hash]
                    self.evictions += 1
                block.block_hash = None
            block.ref_count = 1
            blocks.append(block)
        return True

    def cache_blocks(
        self, blocks: Sequence[Block], hashes: Sequence[int], start: int, upto: int
    ) -> None:
        """Make full blocks ``start..upto`` findable by their hashes (earlier ones already are)."""
        cached = self._cached
        for i in range(start, upto):
            block = blocks[i]
            if block.block_hash is None:
                h = hashes[i]
                if h not in cached:
                    cached[h] = block
                    block.block_hash = h

    def free(self, blocks: list[Block]) -> None:
        """Release a request's blocks, tail first; they stay cached until evicted."""
        for block in reversed(blocks):
            block.ref_count -= 1
            if block.ref_count == 0:
                if block.block_hash is None:
                    # Empty blocks are reused before cached ones.
                    self._free[block.block_id] = block
                    self._free.move_to_end(block.block_id, last=False)
                else:
                    self._free[block.block_id] = block
        blocks.clear()

    def reset(self) -> None:
        """Drop every unreferenced cached block (vLLM's reset_prefix_cache)."""
        for block in self._free.values():
            if block.block_hash is not None:
                self._cached.pop(block.block_hash, None)
                block.block_hash = None
