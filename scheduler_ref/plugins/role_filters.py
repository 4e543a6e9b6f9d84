"""decode-filter / prefill-filter (llm-d): by-label on ``llm-d.ai/role``.

Decode keeps ``decode`` and ``both`` and unlabelled pods (a plain pool is all decode);
prefill keeps only ``prefill``.
"""

from __future__ import annotations

from scheduler_ref.params import Params
from scheduler_ref.plugins.by_label import ByLabel

ROLE_LABEL = "llm-d.ai/role"


def _role_params(values: list[str], allows_no_label: bool) -> Params:
    return Params({"label": ROLE_LABEL, "validValues": values, "allowsNoLabel": allows_no_label})


class DecodeFilter(ByLabel):
    type_name = "decode-filter"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, _role_params(["decode", "both"], True))


class PrefillFilter(ByLabel):
    type_name = "prefill-filter"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, _role_params(["prefill"], False))
