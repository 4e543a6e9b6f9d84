"""queue-scorer: prefer short waiting queues, min-max normalised over the candidates."""

from __future__ import annotations

from scheduler_ref.plugins.base import Scorer
from scheduler_ref.registry import register
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


@register("queue-scorer")
class QueueScorer(Scorer):
    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        queues = [e.waiting for e in endpoints]
        lo, hi = min(queues), max(queues)
        if hi == lo:
            return [1.0] * len(queues)
        span = hi - lo
        return [(hi - q) / span for q in queues]
