"""active-request-scorer (llm-d): prefer endpoints with fewer in-flight requests *it* sent.

In-flight entries expire after ``requestTimeout`` so lost responses do not pin an endpoint.
"""

from __future__ import annotations

from scheduler_ref.params import Params
from scheduler_ref.plugins.base import EndpointsHook, PreRequest, ResponseHook, Scorer
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class ActiveRequestScorer(Scorer, PreRequest, ResponseHook, EndpointsHook):
    type_name = "active-request-scorer"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.timeout = params.duration("requestTimeout", default=120.0)
        self.inflight: dict[str, dict[str, float]] = {}

    def _count(self, key: str, now: float) -> int:
        reqs = self.inflight.get(key)
        if not reqs:
            return 0
        expired = [r for r, t in reqs.items() if now - t > self.timeout]
        for r in expired:
            del reqs[r]
        return len(reqs)

    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        counts = [self._count(e.key, now) for e in endpoints]
        top = max(counts)
        if top == 0:
            return [1.0] * len(counts)
        return [(top - n) / top for n in counts]

    def pre_request(
        self, req: LLMRequest, picked: Endpoint, state: CycleState, now: float
    ) -> None:
        self.inflight.setdefault(picked.key, {})[req.request_id] = now

    def response_complete(self, req: LLMRequest, endpoint: str, now: float) -> None:
        reqs = self.inflight.get(endpoint)
        if reqs is not None:
            reqs.pop(req.request_id, None)

    def endpoints_changed(self, keys: set[str]) -> None:
        for k in [k for k in self.inflight if k not in keys]:
            del self.inflight[k]
