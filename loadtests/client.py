"""Streaming OpenAI-compatible requests under gevent, timed per SSE chunk.  (Locust side.)

geventhttpclient's ``readline`` returns each SSE line as soon as it arrives (``read(n)``
would wait for n bytes, making every token appear at once), so chunk times are real.
Times come from ``time.perf_counter`` taken right before the request is written and right
after each content-bearing chunk is read; role-only, usage-only and ``[DONE]`` chunks carry
no token and are not timed. ITL gaps are per content chunk (one token per chunk on vLLM).
"""

from __future__ import annotations

import json
import time
from itertools import pairwise
from typing import Any

from geventhttpclient import HTTPClient

from loadtests.samples import Sample
from loadtests.workloads import RequestSpec

__all__ = ["build_body", "new_http_client", "send_request"]

POD_HEADER = "x-inference-pod"


def new_http_client(base_url: str, timeout_s: float) -> HTTPClient:
    """One keep-alive connection per user (requests of a user are sequential)."""
    return HTTPClient.from_url(
        base_url, concurrency=1, connection_timeout=timeout_s, network_timeout=timeout_s
    )


def build_body(req: RequestSpec, model: str, stream: bool, ignore_eos: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens, "stream": stream}
    if req.api == "chat":
        body["messages"] = req.messages
    else:
        body["prompt"] = req.prompt
    if stream:
        body["stream_options"] = {"include_usage": True}
    if ignore_eos:
        body["ignore_eos"] = True
    return body


def _content(obj: dict[str, Any]) -> bool:
    choices = obj.get("choices")
    if not choices:
        return False
    c = choices[0]
    if c.get("text"):
        return True
    delta = c.get("delta")
    return bool(delta and delta.get("content"))


def _apply_usage(sample: Sample, usage: dict[str, Any] | None) -> None:
    if not usage:
        return
    sample.prompt_tokens = usage.get("prompt_tokens")
    sample.completion_tokens = usage.get("completion_tokens")
    details = usage.get("prompt_tokens_details") or {}
    sample.cached_tokens = details.get("cached_tokens", 0 if details is not None else None)


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw[:200].decode("utf-8", "replace")


def send_request(
    http: HTTPClient, path: str, body: dict[str, Any], headers: dict[str, str], sample: Sample
) -> Sample:
    """Send one request and fill ``sample``'s timings, tokens, status, pod and error."""
    payload = json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **headers}
    perf = time.perf_counter
    sample.start = time.time()
    t0 = perf()
    times: list[float] = []
    try:
        resp = http.request("POST", path, body=payload, headers=all_headers)
        sample.status = resp.status_code
        pod = resp.get(POD_HEADER)
        sample.pod = pod if isinstance(pod, str) else None
        if sample.status >= 400:
            sample.error = f"HTTP {sample.status}: {_error_message(resp.read())}"
        elif sample.stream:
            usage = None
            readline = resp.readline
            while True:
                line = readline(b"\n")
                if not line:
                    break
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                obj = json.loads(data)
                if _content(obj):
                    times.append(perf())
                if obj.get("usage"):
                    usage = obj["usage"]
            _apply_usage(sample, usage)
            resp.read()  # drain to the end of the chunked body so the connection is reusable
        else:
            obj = json.loads(resp.read())
            times.append(perf())
            _apply_usage(sample, obj.get("usage"))
    except Exception as exc:  # network errors and bad bodies become failed samples
        sample.error = f"{type(exc).__name__}: {exc}"
    end = perf()
    _timings(sample, t0, times, end)
    return sample


def _timings(sample: Sample, t0: float, times: list[float], end: float) -> None:
    sample.e2e_s = (times[-1] if times else end) - t0
    if sample.completion_tokens is None and sample.stream and times:
        sample.completion_tokens = len(times)
    if sample.stream and times:
        sample.ttft_s = times[0] - t0
        sample.itl_s = [b - a for a, b in pairwise(times)]
        n = sample.completion_tokens or len(times)
        if n > 1:
            sample.tpot_s = (times[-1] - times[0]) / (n - 1)
    if sample.completion_tokens:
        sample.ntpot_s = sample.e2e_s / sample.completion_tokens
