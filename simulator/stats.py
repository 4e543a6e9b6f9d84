"""Engine statistics as plain numbers: counters and cumulative histograms.

Pure data (no clock, no locks, no Prometheus objects) so the engine can record into it from
its step function and a test can read exact values; ``metrics`` renders it for /metrics.
``Histogram.observe`` takes a count so a step records one inter-token gap for a whole batch.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Sequence

from prometheus_client.utils import floatToGoString

__all__ = ["EngineStats", "Histogram", "token_buckets"]

# Bucket bounds as vLLM declares them (seconds).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
OVERRUN_BUCKETS = (-0.001, -0.0005, 0.0, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
                   0.025, 0.05, 0.1)


def token_buckets(max_value: int) -> tuple[float, ...]:
    """1-2-5 buckets up to ``max_value`` (vLLM's build_1_2_5_buckets)."""
    out: list[float] = []
    exp = 1
    while True:
        for m in (1, 2, 5):
            v = m * exp
            if v > max_value:
                return tuple(out)
            out.append(float(v))
        exp *= 10


class Histogram:
    """Cumulative-on-render histogram: per-bucket counts, a sum and a count."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        """Record ``n`` samples of ``value``."""
        self.counts[bisect_left(self.bounds, value)] += n
        self.total += value * n
        self.count += n

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs ending with +Inf, as Prometheus exposes them."""
        out: list[tuple[str, int]] = []
        acc = 0
        for bound, c in zip(self.bounds, self.counts, strict=False):
            acc += c
            out.append((floatToGoString(bound), acc))
        out.append(("+Inf", self.count))
        return out


class EngineStats:
    """What the engine counts; the ``vllm:*`` metric each field feeds is named beside it."""

    def __init__(self, max_model_len: int, keep_recent: int = 20_000) -> None:
        tokens = token_buckets(max_model_len)
        self.prompt_tokens = 0  # vllm:prompt_tokens_total
        self.generation_tokens = 0  # vllm:generation_tokens_total
        self.prefix_queries = 0  # vllm:prefix_cache_queries_total
        self.prefix_hits = 0  # vllm:prefix_cache_hits_total
        self.preemptions = 0  # vllm:num_preemptions_total
        self.success: Counter[str] = Counter()  # vllm:request_success_total{finished_reason}
        self.ttft = Histogram(TTFT_BUCKETS)  # vllm:time_to_first_token_seconds
        self.itl = Histogram(ITL_BUCKETS)  # vllm:inter_token_latency_seconds
        self.e2e = Histogram(REQUEST_BUCKETS)  # vllm:e2e_request_latency_seconds
        self.queue = Histogram(REQUEST_BUCKETS)  # vllm:request_queue_time_seconds
        self.prefill = Histogram(REQUEST_BUCKETS)  # vllm:request_prefill_time_seconds
        self.decode = Histogram(REQUEST_BUCKETS)  # vllm:request_decode_time_seconds
        self.inference = Histogram(REQUEST_BUCKETS)  # vllm:request_inference_time_seconds
        self.prompt_hist = Histogram(tokens)  # vllm:request_prompt_tokens
        self.generation_hist = Histogram(tokens)  # vllm:request_generation_tokens
        self.step_overrun = Histogram(OVERRUN_BUCKETS)  # lamplighter_sim_step_overrun_seconds
        self.steps = 0  # lamplighter_sim_steps_total
        # Raw recent samples for the capacity benchmark (/admin/stats).
        self.recent_overruns: deque[float] = deque(maxlen=keep_recent)
        self.recent_ttft: deque[tuple[str, float]] = deque(maxlen=keep_recent)

    def reset_recent(self) -> None:
        """Forget raw samples (the benchmark calls this between load levels)."""
        self.recent_overruns.clear()
        self.recent_ttft.clear()
