"""prefix-cache-scorer: score = matched prefix blocks / total blocks, from the approximate index.

Parameters and behaviour follow GAIE v1.5.0's approximate prefix producer: a block is
``blockSizeTokens`` x 4 characters (with ``autoTune``, the tokens come from the first
candidate's ``vllm:cache_config_info`` block_size); at most ``maxPrefixBlocksToMatch`` blocks
(or ``maxPrefixTokensToMatch`` / block tokens when set); each endpoint's LRU holds
``lruCapacityPerServer`` blocks (with ``autoTune``, the endpoint's num_gpu_blocks), fixed when
the endpoint is first recorded. Also a PreRequest hook: after the pick it records the
request's blocks for the chosen endpoint.
"""

from __future__ import annotations

from scheduler_ref.params import ParamError, Params
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
        self.block_tokens = params.integer("blockSizeTokens", default=16, minimum=0)
        legacy = params.integer("blockSize", default=0)  # deprecated upstream; ignored
        if legacy > 0 and self.block_tokens <= 0:
            raise ParamError("blockSize", "is deprecated; use blockSizeTokens (tokens per "
                             "cache block)")
        self.auto_tune = params.boolean("autoTune", default=True)
        if not self.auto_tune and self.block_tokens <= 0:
            raise ParamError("blockSizeTokens", "must be > 0 when autoTune is false")
        self.max_blocks = params.integer("maxPrefixBlocksToMatch", default=256, minimum=0)
        self.max_tokens = params.integer("maxPrefixTokensToMatch", default=0, minimum=0)
        self.capacity = params.integer("lruCapacityPerServer", default=31250, minimum=1)
        self.block_size = self.block_tokens * CHARS_PER_TOKEN  # chars, before autoTune
        self.index = PrefixIndex()

    def _block_tokens(self, endpoints: list[Endpoint]) -> int:
        if self.auto_tune and endpoints and endpoints[0].block_size > 0:
            return endpoints[0].block_size
        return self.block_tokens

    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        tokens = self._block_tokens(endpoints)
        bs = tokens * CHARS_PER_TOKEN
        max_blocks = self.max_blocks
        if self.max_tokens > 0 and tokens > 0:
            max_blocks = self.max_tokens // tokens
        seed = (req.target_model + req.cache_salt).encode()
        hashes = block_hashes(req.prompt.encode(), seed, bs, max_blocks)
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
