"""no-hit-lru-scorer (llm-d): spread cold requests (no prefix hit) to least recently used pods.

Requests with a hit get a neutral 0.5 everywhere, leaving them to the prefix scorer.
"""

from __future__ import annotations

from collections import OrderedDict

from scheduler_ref.params import Params
from scheduler_ref.plugins.base import EndpointsHook, PreRequest, Scorer
from scheduler_ref.plugins.prefix_cache_scorer import MATCHES
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class NoHitLRUScorer(Scorer, PreRequest, EndpointsHook):
    type_name = "no-hit-lru-scorer"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.size = params.integer("lruSize", default=1024, minimum=1)
        self.used: OrderedDict[str, None] = OrderedDict()  # oldest first

    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        cold = not state.get(MATCHES)
        state[f"{self.name}.cold"] = cold
        if not cold:
            return [0.5] * len(endpoints)
        rank = {k: i for i, k in enumerate(self.used)}
        # never used first, then least recently used; newest last
        order = sorted(range(len(endpoints)), key=lambda i: rank.get(endpoints[i].key, -1))
        n = len(endpoints)
        out = [0.0] * n
        for pos, i in enumerate(order):
            out[i] = 1.0 if n == 1 else 1.0 - pos / (n - 1)
        return out

    def pre_request(
        self, req: LLMRequest, picked: Endpoint, state: CycleState, now: float
    ) -> None:
        if not state.get(f"{self.name}.cold"):
            return
        self.used.pop(picked.key, None)
        self.used[picked.key] = None
        while len(self.used) > self.size:
            self.used.popitem(last=False)

    def endpoints_changed(self, keys: set[str]) -> None:
        for k in [k for k in self.used if k not in keys]:
            del self.used[k]
