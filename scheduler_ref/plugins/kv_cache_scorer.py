"""kv-cache-utilization-scorer (kv-cache-scorer in llm-d): prefer free KV-cache, 1 - usage.

Which vLLM metric feeds ``kv_usage`` is a scraping choice (``--kv-cache-usage-percentage-metric``).
"""

from __future__ import annotations

from scheduler_ref.plugins.base import Scorer
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class KVCacheUtilizationScorer(Scorer):
    type_name = "kv-cache-utilization-scorer"
    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        return [1.0 - e.kv_usage for e in endpoints]
