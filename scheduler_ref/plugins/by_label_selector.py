"""by-label-selector filter (llm-d): keep endpoints matching a Kubernetes label selector."""

from __future__ import annotations

from typing import Any

from scheduler_ref.params import ParamError, Params
from scheduler_ref.plugins.base import Filter
from scheduler_ref.types import CycleState, Endpoint, LLMRequest

_OPS = {"In", "NotIn", "Exists", "DoesNotExist"}


def _expressions(raw: Any) -> list[tuple[str, str, set[str]]]:
    if not isinstance(raw, list):
        raise ParamError("matchExpressions", f"must be a list, got {raw!r}")
    out = []
    for i, item in enumerate(raw):
        where = f"matchExpressions[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ParamError(where, "needs a string 'key'")
        op = item.get("operator")
        if op not in _OPS:
            raise ParamError(f"{where}.operator", f"must be one of {sorted(_OPS)}, got {op!r}")
        values = item.get("values") or []
        if not isinstance(values, list):
            raise ParamError(f"{where}.values", f"must be a list, got {values!r}")
        out.append((item["key"], op, {str(v) for v in values}))
    return out


def selector_matches(
    labels: dict[str, str], match: dict[str, str], exprs: list[tuple[str, str, set[str]]]
) -> bool:
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for key, op, values in exprs:
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


class ByLabelSelector(Filter):
    type_name = "by-label-selector"
    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        sel = params.mapping("selector") or dict(params.raw)
        match = sel.get("matchLabels") or {}
        if not isinstance(match, dict):
            raise ParamError("matchLabels", f"must be a mapping, got {match!r}")
        self.match = {str(k): str(v) for k, v in match.items()}
        self.exprs = _expressions(sel.get("matchExpressions") or [])

    def filter(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[Endpoint]:
        return [e for e in endpoints if selector_matches(e.labels, self.match, self.exprs)]
