"""by-label filter (llm-d): keep endpoints whose ``label`` is one of ``validValues``."""

from __future__ import annotations

from scheduler_ref.params import ParamError, Params
from scheduler_ref.plugins.base import Filter
from scheduler_ref.types import CycleState, Endpoint, LLMRequest


class ByLabel(Filter):
    type_name = "by-label"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.label = params.string("label", default="")
        if not self.label:
            raise ParamError("label", "is required")
        self.valid = set(params.strings("validValues", default=[]))
        self.allows_no_label = params.boolean("allowsNoLabel", default=False)

    def filter(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[Endpoint]:
        out = []
        for e in endpoints:
            v = e.labels.get(self.label)
            if (v is None and self.allows_no_label) or (v is not None and v in self.valid):
                out.append(e)
        return out
