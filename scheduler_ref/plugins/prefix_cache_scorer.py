"""prefix-cache-scorer: score = matched prefix blocks / total blocks, from the approximate index.

Also a PreRequest hook: after the pick it records the request's blocks for the chosen endpoint.
With ``autoTune`` the block size (tokens x 4 chars) and the per-endpoint LRU capacity come from
the ``vllm:cache_config_info`` of the first candidate / the chosen endpoint.
"""

from __future__ import annotations

from scheduler_ref.params import Params
from scheduler_ref.plugins.base import EndpointsHook, PreRequest, Scorer
from scheduler_ref.prefix_index import PrefixIndex, block_hashes
from scheduler_ref.types import CycleState, Endpoint, LLMRequest

CHARS_PER_TOKEN = 4
HASHES = "prefix.hashes"
MATCHES = "prefix.matches"
BLOCK_SIZE = "prefix.block_size"


class PrefixCacheScorer(Scorer, PreRequest, EndpointsHook):
    type_name = "prefix-cache-scorer"
    runs_first = True  # other plugins (no-hit-lru) read its cycle state

    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.block_size = params.integer("blockSize", "hashBlockSize", default=64, minimum=1)
        self.max_blocks = params.integer("maxPrefixBlocksToMatch", default=256, minimum=1)
        self.capacity = params.integer("lruCapacityPerServer", default=31250, minimum=1)
        self.auto_tune = params.boolean("autoTune", default=True)
        self.index = PrefixIndex()

    def _block_size(self, endpoints: list[Endpoint]) -> int:
        if self.auto_tune and endpoints and endpoints[0].block_size > 0:
            return endpoints[0].block_size * CHARS_PER_TOKEN
        return self.block_size

    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        bs = self._block_size(endpoints)
        seed = (req.target_model + req.cache_salt).encode()
        hashes = block_hashes(req.prompt.encode(), seed, bs, self.max_blocks)
        matches = self.index.match(hashes) if hashes else {}
        state[HASHES] = hashes
        state[MATCHES] = matches
        state[BLOCK_SIZE] = bs
        total = len(hashes)
        if not total:
            return [0.0] * len(endpoints)
        get = matches.get
        return [get(e.key, 0) / total for e in endpoints]

    def pre_request(
        self, req: LLMRequest, picked: Endpoint, state: CycleState, now: float
    ) -> None:
        hashes = state.get(HASHES)
        if not hashes:
            return
        cap = picked.num_gpu_blocks if self.auto_tune and picked.num_gpu_blocks > 0 else 0
        self.index.add(hashes, picked.key, cap or self.capacity)

    def endpoints_changed(self, keys: set[str]) -> None:
        self.index.purge(keys)
