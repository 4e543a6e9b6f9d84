"""Streaming OpenAI-compatible requests under gevent, timed per SSE chunk.  (Locust side.)

geventhttpclient's ``readline`` returns each SSE line as soon as it arrives (``read(n)``
would wait for n bytes, making every token appear at once), so chunk times are real.
Times come from ``time.perf_counter`` taken right before the request is written and right
after each content-bearing chunk is read; ``loadtests.timings`` turns them into TTFT, TPOT,
ITL, E2E and NTPOT (one token per content chunk on vLLM).
"""

from __future__ import annotations

import json
import time
from typing import Any

from geventhttpclient import HTTPClient

from loadtests.samples import Sample
from loadtests.timings import apply_usage, fill_timings, is_content_chunk
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
            done = False
            readline = resp.readline
            while True:
                line = readline(b"\n")
                if not line:
                    break
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                obj = json.loads(data)
                if is_content_chunk(obj):
                    times.append(perf())
                if obj.get("usage"):
                    usage = obj["usage"]
            apply_usage(sample, usage)
            resp.read()  # drain to the end of the chunked body so the connection is reusable
            if not done:  # a cut stream is not a completed request, however fast it was
                sample.error = "stream ended before [DONE]"
        else:
            obj = json.loads(resp.read())
            times.append(perf())
            apply_usage(sample, obj.get("usage"))
    except Exception as exc:  # network errors and bad bodies become failed samples
        sample.error = f"{type(exc).__name__}: {exc}"
    end = perf()
    fill_timings(sample, t0, times, end)
    return sample
