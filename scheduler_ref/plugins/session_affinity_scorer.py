"""session-affinity-scorer (llm-d): header ``x-session-token`` = base64("ns/pod") pins a pod.

The token is handed out on the response so a client that echoes it keeps its pod.
"""

from __future__ import annotations

import base64
import binascii

from scheduler_ref.plugins.base import ResponseHook, Scorer
from scheduler_ref.types import CycleState, Endpoint, LLMRequest

HEADER = "x-session-token"


def _identity(e: Endpoint) -> str:
    return f"{e.namespace}/{e.name or e.key}"


def endpoint_token(e: Endpoint) -> str:
    return base64.standard_b64encode(_identity(e).encode()).decode()


class SessionAffinityScorer(Scorer, ResponseHook):
    type_name = "session-affinity-scorer"
    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        token = req.headers.get(HEADER, "")
        try:
            wanted = base64.standard_b64decode(token.encode()).decode() if token else ""
        except (binascii.Error, UnicodeDecodeError, ValueError):
            wanted = ""
        return [1.0 if wanted and _identity(e) == wanted else 0.0 for e in endpoints]

    def response_headers(self, req: LLMRequest, endpoint: Endpoint) -> dict[str, str]:
        return {HEADER: endpoint_token(endpoint)}
