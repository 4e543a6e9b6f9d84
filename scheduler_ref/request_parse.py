"""OpenAI request parsing (the EPP's openai parser): body bytes -> :class:`LLMRequest`.

Pure and total: every malformed input becomes ``SchedulingError("BadRequest", ...)``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from scheduler_ref.types import LLMRequest, SchedulingError

__all__ = ["api_from_path", "parse_request", "rewrite_model"]

_SUFFIXES = (
    ("/chat/completions", "chat"),
    ("/completions", "completions"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
)


def api_from_path(path: str) -> str:
    p = path.split("?", 1)[0].rstrip("/")
    for suffix, api in _SUFFIXES:
        if p.endswith(suffix):
            return api
    return ""


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _prompt_text(api: str, body: Mapping[str, Any]) -> tuple[str, str]:
    """Return (api, text hashed by the prefix index); BadRequest when the prompt is missing."""
    if not api:
        api = "chat" if "messages" in body else "responses" if "input" in body else "completions"
    if api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SchedulingError("BadRequest", "chat completions request needs non-empty "
                                  "'messages'")
        return api, _dump(messages)
    key = "prompt" if api == "completions" else "input"
    value = body.get(key)
    if value is None or value == "" or value == []:
        raise SchedulingError("BadRequest", f"{api} request needs '{key}'")
    return api, value if isinstance(value, str) else _dump(value)


def parse_request(path: str, headers: Mapping[str, str], body: bytes) -> LLMRequest:
    """Parse an inference request as the EPP does; headers must be lower-cased."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # deep nesting: not a 500
        raise SchedulingError("BadRequest", f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SchedulingError("BadRequest", "request body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise SchedulingError("BadRequest", "model not found in request body")
    api, prompt = _prompt_text(api_from_path(path), data)
    salt = data.get("cache_salt")
    rewrite = headers.get("x-gateway-model-name-rewrite", "")
    return LLMRequest(
        request_id=headers.get("x-request-id") or str(uuid.uuid4()),
        model=model,
        target_model=rewrite or model,
        api=api,
        prompt=prompt,
        cache_salt=salt if isinstance(salt, str) else "",
        stream=data.get("stream") is True,
        headers=dict(headers),
        objective=headers.get("x-gateway-inference-objective", ""),
        fairness_id=headers.get("x-gateway-inference-fairness-id", ""),
    )


def rewrite_model(body: bytes, req: LLMRequest) -> bytes:
    """The body to forward: re-encoded with the target model when a rewrite asked for one."""
    if req.target_model == req.model:
        return body
    data = json.loads(body)
    data["model"] = req.target_model
    return json.dumps(data).encode()
