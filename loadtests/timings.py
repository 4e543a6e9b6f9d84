"""Per-request latency figures from chunk arrival times, as LOAD.md defines them.

Pure (no gevent) so the definitions are unit-tested exactly; ``client`` only records times:

- TTFT: first content-bearing chunk - send (role-only, usage-only and ``[DONE]`` carry no
  token and are not timed; see :func:`is_content_chunk`);
- TPOT: (last content chunk - first) / (output_tokens - 1), per request;
- ITL: every gap between consecutive content chunks (pooled over requests by ``stats``);
- E2E: last content chunk - send (end of the response when no chunk carried content);
- NTPOT: E2E / output_tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from loadtests.samples import Sample

__all__ = ["apply_usage", "fill_timings", "is_content_chunk"]


def is_content_chunk(obj: dict[str, Any]) -> bool:
    """Does this OpenAI response chunk carry generated text (completions or chat delta)?"""
    choices = obj.get("choices")
    if not choices:
        return False
    choice = choices[0]
    if choice.get("text"):
        return True
    delta = choice.get("delta")
    return bool(delta and delta.get("content"))


def apply_usage(sample: Sample, usage: dict[str, Any] | None) -> None:
    """Token counts from ``usage``; ``cached_tokens`` stays None unless the server reports it
    (vLLM omits ``prompt_tokens_details`` by default, which is not a 0% hit rate)."""
    if not usage:
        return
    sample.prompt_tokens = usage.get("prompt_tokens")
    sample.completion_tokens = usage.get("completion_tokens")
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        sample.cached_tokens = int(details["cached_tokens"])


def fill_timings(sample: Sample, sent: float, content_times: Sequence[float], end: float) -> None:
    """Set TTFT, TPOT, ITL, E2E and NTPOT from perf-counter times of one request.

    ``content_times`` are the arrival times of content chunks (streaming) or of the whole
    body (non-streaming, one entry); ``end`` is when the response was fully read.
    """
    times = list(content_times)
    sample.e2e_s = (times[-1] if times else end) - sent
    if sample.completion_tokens is None and sample.stream and times:
        sample.completion_tokens = len(times)
    if sample.stream and times:
        sample.ttft_s = times[0] - sent
        sample.itl_s = [b - a for a, b in pairwise(times)]
        n = sample.completion_tokens or len(times)
        if n > 1:
            sample.tpot_s = (times[-1] - times[0]) / (n - 1)
    if sample.completion_tokens:
        sample.ntpot_s = sample.e2e_s / sample.completion_tokens
