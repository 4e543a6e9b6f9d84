"""lora-affinity-scorer: prefer endpoints where the request's adapter is already loaded."""

from __future__ import annotations

from scheduler_ref.plugins.base import Scorer
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class LoraAffinityScorer(Scorer):
    type_name = "lora-affinity-scorer"
    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        adapter = req.target_model
        out = []
        for e in endpoints:
            loaded = len(e.running_adapters) + len(e.waiting_adapters)
            if adapter in e.running_adapters:
                out.append(1.0)
            elif e.max_lora > 0 and loaded < e.max_lora:
                out.append(0.8)
            elif adapter in e.waiting_adapters:
                out.append(0.6)
            else:
                out.append(0.0)
        return out
