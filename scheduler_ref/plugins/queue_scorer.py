"""queue-scorer: prefer short waiting queues, min-max normalised over the candidates."""

from __future__ import annotations

from scheduler_ref.plugins.base import Scorer
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class QueueScorer(Scorer):
    type_name = "queue-scorer"
    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        queues = [e.waiting for e in endpoints]
        lo, hi = min(queues), max(queues)
        if hi == lo:
            return [1.0] * len(queues)
        span = hi - lo
        return [(hi - q) / span for q in queues]
