"""LOAD.md's per-request metric definitions, on hand-picked chunk times (exact values)."""

from __future__ import annotations

import pytest

from loadtests.samples import Sample
from loadtests.stats import summarize
from loadtests.timings import apply_usage, fill_timings, is_content_chunk


def _sample(stream: bool = True) -> Sample:
    return Sample(0, "g", "completions", stream, "/v1/completions", 0.0, status=200)


@pytest.mark.parametrize(
    ("chunk", "content"),
    [
        ({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, False),  # role-only
        ({"choices": [], "usage": {"prompt_tokens": 3}}, False),  # usage-only
        ({"choices": [{"index": 0, "delta": {"content": ""}}]}, False),
        ({"choices": [{"index": 0, "text": ""}]}, False),
        ({"choices": [{"index": 0, "delta": {"content": " tok"}}]}, True),
        ({"choices": [{"index": 0, "text": " tok"}]}, True),
    ],
)
def test_only_content_bearing_chunks_are_timed(chunk: dict, content: bool) -> None:
    assert is_content_chunk(chunk) is content


def test_streaming_definitions() -> None:
    s = _sample()
    apply_usage(s, {"prompt_tokens": 10, "completion_tokens": 4})
    # sent at 1.0; content chunks at 1.5, 1.6, 1.8, 2.1; body fully read at 2.2
    fill_timings(s, 1.0, [1.5, 1.6, 1.8, 2.1], 2.2)
    assert s.ttft_s == pytest.approx(0.5)  # first content chunk - send
    assert s.tpot_s == pytest.approx((2.1 - 1.5) / 3)  # (last - first) / (n - 1)
    assert s.itl_s == pytest.approx([0.1, 0.2, 0.3])  # every gap
    assert s.e2e_s == pytest.approx(1.1)  # last content chunk - send
    assert s.ntpot_s == pytest.approx(1.1 / 4)  # e2e / output tokens


def test_tpot_uses_usage_token_count_over_chunk_count() -> None:
    s = _sample()
    apply_usage(s, {"prompt_tokens": 10, "completion_tokens": 7})  # 7 tokens in 4 chunks
    fill_timings(s, 0.0, [1.0, 1.2, 1.4, 1.6], 1.7)
    assert s.tpot_s == pytest.approx(0.6 / 6) and s.ntpot_s == pytest.approx(1.6 / 7)


def test_without_usage_output_tokens_are_the_content_chunks() -> None:
    s = _sample()
    fill_timings(s, 0.0, [0.2, 0.3], 0.4)
    assert s.completion_tokens == 2 and s.tpot_s == pytest.approx(0.1)


def test_single_token_has_no_tpot_and_non_streaming_has_no_ttft() -> None:
    one = _sample()
    apply_usage(one, {"prompt_tokens": 1, "completion_tokens": 1})
    fill_timings(one, 0.0, [0.25], 0.3)
    assert one.ttft_s == pytest.approx(0.25) and one.tpot_s is None and one.itl_s == []
    whole = _sample(stream=False)
    apply_usage(whole, {"prompt_tokens": 5, "completion_tokens": 5})
    fill_timings(whole, 0.0, [0.5], 0.5)
    assert whole.ttft_s is None and whole.e2e_s == pytest.approx(0.5)
    assert whole.ntpot_s == pytest.approx(0.1)


def test_cached_tokens_unknown_unless_reported() -> None:
    silent, explicit_null, reported = _sample(), _sample(), _sample()
    apply_usage(silent, {"prompt_tokens": 8, "completion_tokens": 1})
    apply_usage(explicit_null, {"prompt_tokens": 8, "prompt_tokens_details": None})
    apply_usage(reported, {"prompt_tokens": 8, "prompt_tokens_details": {"cached_tokens": 6}})
    assert silent.cached_tokens is None and explicit_null.cached_tokens is None
    assert reported.cached_tokens == 6
    # a server that never reports cached tokens has an unknown hit rate, not 0
    assert summarize([silent])["hit_rate"] is None
    mixed = summarize([silent, reported])
    assert mixed["hit_rate"] == pytest.approx(6 / 8) and mixed["hit_rate_count"] == 1
