"""no-hit-lru-scorer (llm-d): spread cold requests (no prefix hit) to least recently used pods.

Requests with a hit get a neutral 0.5 everywhere, leaving them to the prefix scorer. As in
llm-d-inference-scheduler v0.7.1: with n candidates, never-used endpoints score 1 - i/(n-1) in
candidate order, then used ones 1 - (never_used + position in the whole LRU, oldest first)/(n-1)
clamped at 0; the LRU (``lruSize`` endpoints) is not purged when endpoints leave.
"""

from __future__ import annotations

from collections import OrderedDict

from scheduler_ref.params import Params
from scheduler_ref.plugins.base import PreRequest, Scorer
from scheduler_ref.plugins.prefix_cache_scorer import MATCHES
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class NoHitLRUScorer(Scorer, PreRequest):
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
        n = len(endpoints)
        if n == 1:
            return [1.0]
        position = {k: i for i, k in enumerate(self.used)}
        never = [i for i, e in enumerate(endpoints) if e.key not in position]
        out = [0.0] * n
        for rank, i in enumerate(never):
            out[i] = 1.0 - rank / (n - 1)
        for i, e in enumerate(endpoints):
            if e.key in position:
                out[i] = max(0.0, 1.0 - (len(never) + position[e.key]) / (n - 1))
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
