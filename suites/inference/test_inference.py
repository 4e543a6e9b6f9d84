"""Inference through the gateway: every API the guide promises answers, N rounds, no errors.

Mirrors the llm-d PR and GKE workflows (models, completions, chat, streaming) and adds the
official ``openai`` client as a caller, since that is what users point at the gateway.
"""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from fixtures.stack import Stack

ROUNDS = 10
MAX_TOKENS = 8


def _served_pod(response: httpx.Response, stack: Stack) -> str | None:
    """The pod named in ``x-inference-pod``, checked against the stack (None if not told)."""
    if not stack.supports("pod-identity-header"):
        return None
    pod = response.headers.get("x-inference-pod")
    assert pod, f"{response.request.url}: no x-inference-pod header in the response"
    assert pod in {p.name for p in stack.pods}, (
        f"x-inference-pod {pod!r} is not one of the stack's pods {[p.name for p in stack.pods]}")
    return pod


def _check_usage(usage: dict[str, object], where: str) -> None:
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        assert isinstance(value, int) and value > 0, (
            f"{where}: usage.{key} missing or zero: {usage}")


def _sse_events(response: httpx.Response) -> list[dict[str, object]]:
    """Parse an SSE body into its JSON events; the stream must end with ``[DONE]``."""
    events: list[dict[str, object]] = []
    done = False
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[len("data:"):].strip()
        if payload == "[DONE]":
            done = True
            continue
        events.append(json.loads(payload))
    assert done, f"{response.request.url}: stream ended without data: [DONE]"
    return events


def test_models_lists_the_served_model(gateway: httpx.Client, stack: Stack) -> None:
    response = gateway.get("/v1/models")
    assert response.status_code == 200, f"GET /v1/models: {response.status_code} {response.text}"
    ids = [m["id"] for m in response.json()["data"]]
    assert stack.model in ids, f"GET /v1/models: {stack.model!r} not among {ids}"


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_completion_rounds(gateway: httpx.Client, stack: Stack, round_no: int) -> None:
    body = {"model": stack.model, "prompt": f"Round {round_no}: say something about lamps.",
            "max_tokens": MAX_TOKENS}
    response = gateway.post("/v1/completions", json=body)
    assert response.status_code == 200, f"completion: {response.status_code} {response.text}"
    data = response.json()
    assert data["object"] == "text_completion" and data["choices"][0]["text"], data
    _check_usage(data["usage"], "completion")
    _served_pod(response, stack)


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_chat_rounds(gateway: httpx.Client, stack: Stack, round_no: int) -> None:
    body = {"model": stack.model, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": f"Round {round_no}: hello?"}]}
    response = gateway.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, f"chat: {response.status_code} {response.text}"
    data = response.json()
    assert data["object"] == "chat.completion", data
    assert data["choices"][0]["message"]["role"] == "assistant", data
    _check_usage(data["usage"], "chat")
    _served_pod(response, stack)


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_streaming_with_usage(gateway: httpx.Client, stack: Stack, path: str) -> None:
    body: dict[str, object] = {"model": stack.model, "max_tokens": MAX_TOKENS, "stream": True,
                               "stream_options": {"include_usage": True}}
    if path.endswith("chat/completions"):
        body["messages"] = [{"role": "user", "content": "Stream me a short answer."}]
    else:
        body["prompt"] = "Stream me a short answer."
    with gateway.stream("POST", path, json=body) as response:
        assert response.status_code == 200, f"{path}: {response.status_code} {response.read()!r}"
        assert response.headers["content-type"].startswith("text/event-stream"), (
            f"{path}: content-type {response.headers['content-type']!r}")
        _served_pod(response, stack)
        events = _sse_events(response)
    usage_events = [e for e in events if e.get("usage")]
    assert usage_events, f"{path}: no chunk carried usage (stream_options.include_usage)"
    usage = usage_events[-1]["usage"]
    assert isinstance(usage, dict)
    _check_usage(usage, path)
    assert isinstance(usage["completion_tokens"], int) and usage["completion_tokens"] <= MAX_TOKENS


def test_openai_client_streams_chat(stack: Stack) -> None:
    client = OpenAI(base_url=stack.gateway_url + "/v1", api_key="lamplighter", max_retries=0,
                    timeout=60.0)
    stream = client.chat.completions.create(
        model=stack.model, max_tokens=MAX_TOKENS, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Hello from the official client."}])
    text, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(text), "openai client: the stream carried no content"
    assert usage is not None and usage.completion_tokens > 0, f"openai client: usage {usage}"


def test_openai_client_completion_and_models(stack: Stack) -> None:
    client = OpenAI(base_url=stack.gateway_url + "/v1", api_key="lamplighter", max_retries=0,
                    timeout=60.0)
    assert stack.model in [m.id for m in client.models.list()]
    completion = client.completions.create(model=stack.model, prompt="Lamps are",
                                           max_tokens=MAX_TOKENS)
    assert completion.choices[0].text and completion.usage is not None
