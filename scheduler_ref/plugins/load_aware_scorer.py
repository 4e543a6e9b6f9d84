"""load-aware-scorer (llm-d): empty queue 0.5, falling linearly to 0 at ``threshold``."""

from __future__ import annotations

from scheduler_ref.params import ParamError, Params
from scheduler_ref.plugins.base import Scorer
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class LoadAwareScorer(Scorer):
    type_name = "load-aware-scorer"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.threshold = params.number("threshold", default=128)
        if self.threshold <= 0:
            raise ParamError("threshold", f"must be > 0, got {self.threshold:g}")

    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        t = self.threshold
        return [0.5 if e.waiting <= 0 else 0.5 * (1.0 - min(e.waiting, t) / t) for e in endpoints]
