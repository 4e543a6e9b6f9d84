"""decode-filter / prefill-filter (llm-d): by-label on ``llm-d.ai/role``.

Decode keeps ``decode`` and ``both`` and unlabelled pods (a plain pool is all decode);
prefill keeps only ``prefill``.
"""

from __future__ import annotations

from scheduler_ref.params import Params
from scheduler_ref.plugins.by_label import ByLabel
from scheduler_ref.registry import register

ROLE_LABEL = "llm-d.ai/role"


def _role_params(values: list[str], allows_no_label: bool) -> Params:
    return Params({"label": ROLE_LABEL, "validValues": values, "allowsNoLabel": allows_no_label})


@register("decode-filter")
class DecodeFilter(ByLabel):
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, _role_params(["decode", "both"], True))


@register("prefill-filter")
class PrefillFilter(ByLabel):
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, _role_params(["prefill"], False))
