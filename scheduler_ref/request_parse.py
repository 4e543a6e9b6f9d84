"""OpenAI request parsing as GAIE v1.5.0's openai parser does it: body bytes -> LLMRequest.

The API comes from the path suffix (conversations, responses, chat/completions, completions,
embeddings; anything else, or no path, is completions). Each API's fields are decoded with
Go's typing rules (a field of the wrong JSON type fails the whole request), and the text the
prefix index hashes is what the EPP hashes: the completions prompt as plain text (an array of
strings joined by spaces), otherwise Go's ``json.Marshal`` of the parsed structure.

Pure and total: every malformed input becomes ``SchedulingError("BadRequest", ...)``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from scheduler_ref.gojson import GoJSONError, check_numbers, go_loads, go_marshal, go_string
from scheduler_ref.types import LLMRequest, SchedulingError

__all__ = ["api_from_path", "hashed_text", "parse_request", "rewrite_model"]

_SUFFIXES = (
    ("/conversations", "conversations"),
    ("/responses", "responses"),
    ("/chat/completions", "chat"),
    ("/completions", "completions"),
    ("/embeddings", "embeddings"),
)


class _TypeError(Exception):
    """A field of the wrong JSON type (Go's UnmarshalTypeError)."""


def api_from_path(path: str) -> str:
    """The API a path selects; the EPP's default for anything else is completions."""
    for suffix, api in _SUFFIXES:
        if path.endswith(suffix):
            return api
    return "completions"


def _str(obj: Mapping[str, Any], key: str) -> str:
    v = obj.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _TypeError(key)
    return v


def _typed(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> None:
    v = obj.get(key)
    if v is not None and not isinstance(v, kind):
        raise _TypeError(key)


def _object(v: Any, key: str) -> Mapping[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _TypeError(key)
    return v


def _block(raw: Any) -> str:
    b = _object(raw, "content")
    parts = [f'"type":{go_string(_str(b, "type"))}']
    text = _str(b, "text")
    if text:
        parts.append(f'"text":{go_string(text)}')
    for key, fields in (("image_url", ("url",)), ("input_audio", ("data", "format")),
                        ("video_url", ("url",))):
        inner = _object(b.get(key), key)
        values = [(f, _str(inner, f)) for f in fields]
        parts.append(f'"{key}":{{' + ",".join(f'"{f}":{go_string(v)}' for f, v in values if v)
                     + "}")
    return "{" + ",".join(parts) + "}"


def _content(raw: Any) -> str:
    """Content.MarshalJSON: the string, else the typed blocks, else ""."""
    if raw is None or isinstance(raw, str):
        return go_string(raw or "")
    if isinstance(raw, list):
        return "[" + ",".join(_block(b) for b in raw) + "]"
    raise _TypeError("content")


def _message(raw: Any) -> str:
    m = _object(raw, "messages")
    role = _str(m, "role")
    head = f'"role":{go_string(role)},' if role else ""
    return "{" + head + '"content":' + _content(m.get("content")) + "}"


def _chat(body: Mapping[str, Any]) -> str:
    _typed(body, "tools", list)
    _typed(body, "documents", list)
    _typed(body, "chat_template", str)
    for flag in ("return_assistant_tokens_mask", "continue_final_message",
                 "add_generation_prompt"):
        _typed(body, flag, bool)
    _typed(body, "chat_template_kwargs", dict)
    messages = body.get("messages")
    if messages is not None and not isinstance(messages, list):
        raise _TypeError("messages")
    text = "[" + ",".join(_message(m) for m in messages or []) + "]"
    if not messages:
        raise SchedulingError("BadRequest", "invalid chat completions request: must have "
                              "valid messages field")
    return text


def _completions(body: Mapping[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if not all(p is None or isinstance(p, str) for p in prompt):
            raise _TypeError("prompt")
        text = " ".join(p or "" for p in prompt)
        empty = not prompt
    elif isinstance(prompt, str):
        text, empty = prompt, not prompt
    else:
        raise SchedulingError("BadRequest", "invalid completions request: must have prompt "
                              "field")
    if empty:
        raise SchedulingError("BadRequest", "invalid completions request: must have prompt "
                              "field")
    return text


def _responses(body: Mapping[str, Any]) -> str:
    if body.get("input") is None:
        raise SchedulingError("BadRequest", "invalid responses request: must have input field")
    parts = [{k: body[k]} for k in ("instructions", "tools") if body.get(k) is not None]
    parts.append({"input": body["input"]})
    return go_marshal(parts)


def _embeddings(body: Mapping[str, Any]) -> str:
    if body.get("input") is None:
        raise SchedulingError("BadRequest", "invalid embeddings request: must have input field")
    return go_marshal(body["input"])


def _conversations(body: Mapping[str, Any]) -> str:
    _typed(body, "metadata", dict)
    items = body.get("items")
    if items is not None and not isinstance(items, list):
        raise _TypeError("items")
    out = []
    for raw in items or []:
        item = _object(raw, "items")
        fields = [f'"{k}":{go_string(v)}' for k in ("type", "role") if (v := _str(item, k))]
        if item.get("content") is not None:
            fields.append(f'"content":{go_marshal(item["content"])}')
        out.append("{" + ",".join(fields) + "}")
    if not out:
        raise SchedulingError("BadRequest", "invalid conversations request: must have items "
                              "field")
    return "[" + ",".join(out) + "]"


_HASHED = {"chat": _chat, "completions": _completions, "responses": _responses,
           "embeddings": _embeddings, "conversations": _conversations}


def hashed_text(api: str, body: Mapping[str, Any]) -> str:
    """The text the EPP's prefix index hashes for this request (BadRequest when invalid)."""
    try:
        _str(body, "cache_salt")
        return _HASHED[api](body)
    except _TypeError as e:
        raise SchedulingError("BadRequest", f"invalid {api} request: field '{e}' has the "
                              "wrong JSON type") from None
    except GoJSONError as e:
        raise SchedulingError("BadRequest", f"invalid {api} request: {e}") from None


def parse_request(path: str, headers: Mapping[str, str], body: bytes) -> LLMRequest:
    """Parse an inference request as the EPP does; headers must be lower-cased."""
    try:
        data = go_loads(body)
        check_numbers(data)
    except GoJSONError as e:
        raise SchedulingError("BadRequest", f"error unmarshaling request body: {e}") from None
    if not isinstance(data, dict):
        raise SchedulingError("BadRequest", "error unmarshaling request body: not a JSON object")
    api = api_from_path(path or headers.get("x-original-path", "")
                        or headers.get("x-forwarded-path", ""))
    prompt = hashed_text(api, data)
    model = data.get("model")
    if not isinstance(model, str):
        raise SchedulingError("BadRequest", "model not found in request body")
    rewrite = headers.get("x-gateway-model-name-rewrite", "")
    return LLMRequest(
        request_id=headers.get("x-request-id") or str(uuid.uuid4()),
        model=model,
        target_model=rewrite or model,
        api=api,
        prompt=prompt,
        cache_salt=data.get("cache_salt") or "",
        stream=data.get("stream") is True,
        headers=dict(headers),
        objective=headers.get("x-gateway-inference-objective", ""),
        fairness_id=headers.get("x-gateway-inference-fairness-id", ""),
    )


def rewrite_model(body: bytes, req: LLMRequest) -> bytes:
    """The body to forward: re-encoded with the target model when a rewrite asked for one."""
    if req.target_model == req.model:
        return body
    data = json.loads(body.decode("utf-8", "replace"))
    data["model"] = req.target_model
    return json.dumps(data).encode()
