"""The OpenAI wire format as vLLM serves it: request validation, responses, SSE chunks, errors.

Validation turns every malformed body into an ``ApiError`` (an OpenAI error object with a 4xx
status) instead of an exception escaping the handler. Streaming chunks are built from
per-request byte templates and a cache of each token text's JSON literal, so a token
costs two byte concatenations.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from simulator.generation import render_chat
from simulator.tokenizer import VOCAB_SIZE, tokenize

__all__ = [
    "ApiError",
    "ChunkTemplate",
    "ParsedRequest",
    "chat_response",
    "completion_response",
    "error_body",
    "parse_request",
    "usage_dict",
]

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "BadRequestError",
    422: "BadRequestError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class ApiError(Exception):
    """An error the client should see as an OpenAI error object with ``status``."""

    def __init__(
        self, status: int, message: str, param: str | None = None, err_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.err_type = err_type or _ERROR_TYPES.get(status, "BadRequestError")

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param, self.err_type)


def error_body(
    status: int, message: str, param: str | None = None, err_type: str | None = None
) -> dict[str, Any]:
    """``{"error": {message, type, param, code}}``; ``code`` is the status, as vLLM sends it."""
    return {
        "error": {
            "message": message,
            "type": err_type or _ERROR_TYPES.get(status, "BadRequestError"),
            "param": param,
            "code": status,
        }
    }


@dataclass
class ParsedRequest:
    """A validated generation request."""

    kind: str  # "chat" | "completion"
    model: str
    lora: str | None
    prompt_token_ids: list[int]
    echo_text: str
    max_tokens: int
    stream: bool
    include_usage: bool
    ignore_eos: bool
    seed: int | None


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if not _is_int(v):
        raise ApiError(400, f"'{key}' must be an integer", key)
    return int(v)


def _opt_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    v = body.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ApiError(400, f"'{key}' must be a boolean", key)
    return v


def _check_number(body: dict[str, Any], key: str, lo: float, hi: float) -> None:
    v = body.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise ApiError(400, f"'{key}' must be a number in [{lo}, {hi}]", key)


def _message_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ApiError(400, "only text content parts are supported", "messages")
            text = part.get("text")
            if not isinstance(text, str):
                raise ApiError(400, "a text content part needs a string 'text'", "messages")
            texts.append(text)
        return "".join(texts)
    raise ApiError(400, "message content must be a string or a list of parts", "messages")


def _chat_prompt(body: dict[str, Any]) -> tuple[list[int], str]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", "messages")
    rendered: list[dict[str, str]] = []
    echo = ""
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, "each message needs a string 'role'", "messages")
        text = _message_text(m.get("content"))
        rendered.append({"role": m["role"], "content": text})
        if m["role"] == "user":
            echo = text
    return tokenize(render_chat(rendered)), echo


def _completion_prompt(body: dict[str, Any]) -> tuple[list[int], str]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        ids = tokenize(prompt)
        if not ids:
            raise ApiError(400, "the prompt is empty (no tokens)", "prompt")
        return ids, prompt
    if isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
        if not all(0 <= t < VOCAB_SIZE for t in prompt):
            raise ApiError(400, f"token ids must be in [0, {VOCAB_SIZE})", "prompt")
        return list(prompt), ""
    if isinstance(prompt, list) and len(prompt) > 1:
        raise ApiError(400, "batched prompts are not supported by the simulator", "prompt")
    raise ApiError(400, "'prompt' must be a non-empty string or list of token ids", "prompt")


def parse_request(
    raw: bytes,
    kind: str,
    served_names: Collection[str],
    loras: Collection[str],
    max_model_len: int,
    default_max_tokens: int,
) -> ParsedRequest:
    """Validate a /v1/completions (``kind="completion"``) or /v1/chat/completions body."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required and must be a string", "model")
    if model not in served_names and model not in loras:
        raise ApiError(404, f"The model `{model}` does not exist.", "model")
    lora = model if model in loras and model not in served_names else None
    n = _opt_int(body, "n")
    if n is not None and n != 1:
        raise ApiError(400, "only n=1 is supported", "n")
    stream = _opt_bool(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise ApiError(400, "'stream_options' must be an object", "stream_options")
        if not stream:
            raise ApiError(400, "stream_options is only allowed when stream is true",
                           "stream_options")
        include_usage = _opt_bool(options, "include_usage")
    ignore_eos = _opt_bool(body, "ignore_eos")
    seed = _opt_int(body, "seed")
    _check_number(body, "temperature", 0.0, 2.0)
    _check_number(body, "top_p", 0.0, 1.0)
    if kind == "chat":
        ids, echo = _chat_prompt(body)
        max_tokens = _opt_int(body, "max_completion_tokens")
        key = "max_completion_tokens"
        if max_tokens is None:
            max_tokens, key = _opt_int(body, "max_tokens"), "max_tokens"
    else:
        ids, echo = _completion_prompt(body)
        max_tokens, key = _opt_int(body, "max_tokens"), "max_tokens"
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, f"{key} must be at least 1, got {max_tokens}.", key)
    prompt_len = len(ids)
    if max_tokens is None:
        max_tokens = min(default_max_tokens, max_model_len - prompt_len)
    if prompt_len + max_tokens > max_model_len or max_tokens < 1:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_len + max_tokens} tokens ({prompt_len} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            "completion.",
            "messages" if kind == "chat" else "prompt",
        )
    return ParsedRequest(kind, model, lora, ids, echo, max_tokens, stream, include_usage,
                         ignore_eos, seed)


def usage_dict(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def completion_response(
    rid: str, created: int, model: str, text: str, finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None,
                     "finish_reason": finish_reason, "stop_reason": None}],
        "usage": usage,
    }


def chat_response(
    rid: str, created: int, model: str, text: str, finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0,
                     "message": {"role": "assistant", "content": text, "tool_calls": []},
                     "logprobs": None, "finish_reason": finish_reason, "stop_reason": None}],
        "usage": usage,
    }


# Token text -> its JSON string literal: a stream's vocabulary repeats, so a token's text is
# encoded once per process, not once per chunk.
_QUOTED: dict[str, bytes] = {}
_QUOTED_MAX = 1 << 16


class ChunkTemplate:
    """Byte templates of one stream's SSE chunks (``data: {...}\\n\\n``)."""

    __slots__ = ("_end_none", "_head", "_tail_head", "chat")

    def __init__(self, kind: str, rid: str, created: int, model: str) -> None:
        self.chat = kind == "chat"
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        self._tail_head = (
            f'data: {{"id":"{rid}","object":"{obj}","created":{created},'
            f'"model":{json.dumps(model)},'
        )
        key = '"delta":{"content":' if self.chat else '"text":'
        self._head = (self._tail_head + '"choices":[{"index":0,' + key).encode()
        close = "}" if self.chat else ""
        self._end_none = (close + ',"logprobs":null,"finish_reason":null}]}\n\n').encode()

    def token(self, text: str, finish_reason: str | None = None) -> bytes:
        """The chunk carrying one token (and the finish reason on the last one)."""
        if finish_reason is None:
            end = self._end_none
        else:
            close = "}" if self.chat else ""
            end = (close + f',"logprobs":null,"finish_reason":"{finish_reason}"}}]}}\n\n').encode()
        quoted = _QUOTED.get(text)
        if quoted is None:
            quoted = json.dumps(text).encode()
            if len(_QUOTED) >= _QUOTED_MAX:
                _QUOTED.clear()
            _QUOTED[text] = quoted
        return self._head + quoted + end

    def role(self) -> bytes:
        """The role-only chunk vLLM sends first on chat streams."""
        return (self._tail_head + '"choices":[{"index":0,"delta":{"role":"assistant",'
                '"content":""},"logprobs":null,"finish_reason":null}]}\n\n').encode()

    def usage(self, usage: dict[str, Any]) -> bytes:
        """The final usage chunk (``stream_options.include_usage``): empty choices."""
        return (self._tail_head + '"choices":[],"usage":' + json.dumps(usage) + "}\n\n").encode()


DONE = b"data: [DONE]\n\n"
