"""utilization-detector: pool saturation = mean over endpoints of max(q/QT, kv/KVT).

Stale endpoints count as fully saturated (1.0). Sheddable requests (priority < 0) are refused
with 429 while saturation >= 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler_ref.params import Params
from scheduler_ref.plugins.base import SaturationDetector
from scheduler_ref.types import Endpoint


class UtilizationDetector(SaturationDetector):
    type_name = "utilization-detector"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.queue_threshold = params.number("queueDepthThreshold", default=5, minimum=1e-9)
        self.kv_threshold = params.number("kvCacheUtilThreshold", default=0.8, minimum=1e-9)
        self.staleness = params.duration("metricsStalenessThreshold", default=0.2)

    def endpoint_saturation(self, e: Endpoint, now: float) -> float:
        if e.metrics_time is None or now - e.metrics_time > self.staleness:
            return 1.0
        return max(e.waiting / self.queue_threshold, e.kv_usage / self.kv_threshold)

    def saturation(self, endpoints: Sequence[Endpoint], now: float) -> float:
        if not endpoints:
            return 1.0
        return sum(self.endpoint_saturation(e, now) for e in endpoints) / len(endpoints)
