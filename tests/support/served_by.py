"""Which pod answered: distinct prompts through a stack's gateway, the pod each one reached."""

from __future__ import annotations

import httpx

from fixtures.stack import Stack

__all__ = ["served_by"]


def served_by(stack: Stack, count: int, tag: str) -> list[str]:
    """``x-inference-pod`` of ``count`` completions with prompts unique to ``tag``."""
    names = []
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as http:
        for i in range(count):
            reply = http.post("/v1/completions", json={
                "model": stack.model, "prompt": f"{tag} {i} " * 10, "max_tokens": 2})
            assert reply.status_code == 200, reply.text
            names.append(reply.headers["x-inference-pod"])
    return names
