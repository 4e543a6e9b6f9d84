"""Generated HTTP requests for fuzzing OpenAI-style servers (the simulator, the gateway).

Near-valid bodies (a valid request with generated fields), raw bytes and arbitrary JSON;
headers an attacker or a broken client might send; methods and paths. ``fuzz_http`` sends
``cases`` of them and lets a check judge each answer; ``check_answer`` is the contract every
server here keeps: below 500, and every 4xx an OpenAI error naming its status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

__all__ = ["PATHS", "bodies", "check_answer", "fuzz_http", "headers", "near_valid"]

PATHS = ["/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics",
         "/version", "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/reset_prefix_cache",
         "/admin/config", "/admin/hang", "/nope", "/v1/completions/../x"]
KEYS = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "stream",
        "stream_options", "include_usage", "n", "seed", "ignore_eos", "role", "content",
        "temperature", "top_p", "type", "text", "lora_name", "lora_path", "echo", "logprobs",
        "stop", "tools", "response_format", "min_tokens"]

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=False) | st.text(max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=4),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool", ""]),
                           "content": st.text(max_size=40) | json_values}),
    max_size=4,
)


@st.composite
def near_valid(draw: st.DrawFn, model: str) -> bytes:
    """A valid request for ``model`` with some fields replaced by generated values."""
    body: dict[str, Any] = {"model": draw(st.sampled_from([model] * 4 + ["other", ""])),
                            "max_tokens": draw(st.integers(-2, 40))}
    if draw(st.booleans()):
        body["prompt"] = draw(st.text(max_size=60) | st.lists(st.integers(-5, 2**33),
                                                                max_size=20))
    else:
        body["messages"] = draw(messages)
    if draw(st.booleans()):  # half of them stay valid apart from the fields drawn above
        body.update(draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3)))
    if draw(st.booleans()):
        body["stream"] = True
    text = json.dumps(body)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # truncated JSON
    return text.encode()


def bodies(model: str) -> st.SearchStrategy[bytes]:
    """Mostly near-valid OpenAI bodies for ``model``, then raw bytes and arbitrary JSON."""
    return st.one_of(near_valid(model), near_valid(model), near_valid(model),
                     st.binary(max_size=80), json_values.map(lambda v: json.dumps(v).encode()))
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                       max_size=30).map(str.strip)  # h11 refuses edge whitespace
headers = st.dictionaries(
    st.sampled_from(["content-type", "x-sim-force-error", "accept", "x-request-id",
                     "content-encoding", "x-gateway-destination-endpoint", "authorization",
                     "x-forwarded-for"]),
    header_value | st.sampled_from(["500", "503", "server_error", "application/json",
                                    "gzip", "deflate", "br", "zstd"]),
    max_size=4,
)


def check_answer(response: httpx.Response) -> None:
    """A deliberate answer: below 500, and every 4xx an OpenAI error naming its status."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), \
            f"{response.status_code} without an OpenAI error: {response.text[:300]}"
        error = response.json()["error"]
        assert error["code"] == response.status_code, error
        assert isinstance(error["message"], str) and error["message"], error


def fuzz_http(http: httpx.Client, model: str, cases: int,
              check: Callable[[httpx.Response], None] = check_answer) -> dict[int, int]:
    """Send ``cases`` generated requests through ``http`` (its base URL and timeout: a
    timeout fails as a hang); each answer goes through ``check``. Status counts."""
    seen: dict[int, int] = {}

    @settings(max_examples=cases, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(method=st.sampled_from(["POST"] * 12 + ["GET", "PUT", "DELETE"]),
           path=st.sampled_from(PATHS[:2] * 16 + PATHS), body=bodies(model), headers=headers)
    def one_case(method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        headers.setdefault("content-type", "application/json")
        response = http.request(method, path, content=body, headers=headers)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        check(response)

    one_case()
    return seen
