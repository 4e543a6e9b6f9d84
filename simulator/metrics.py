"""/metrics: engine state rendered under vLLM's metric names, read at scrape time.

Gauges are computed from the engine when scraped, so they show real occupancy; counters and
histograms come from ``EngineStats``. Every series carries ``model_name`` (and ``engine="0"``
as vLLM V1 labels it). ``vllm:gpu_cache_usage_perc`` (the pre-V1 name some EPP versions
read) is exported beside ``vllm:kv_cache_usage_perc``, and ``vllm:time_per_output_token_seconds``
beside ``vllm:inter_token_latency_seconds``. ``lamplighter_sim_*`` series are the
simulator's own (step overrun, steps, speed factor, evictions).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from simulator.engine import Engine
from simulator.stats import Histogram

__all__ = ["CONTENT_TYPE", "EngineCollector", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABELS = ["model_name", "engine"]


class EngineCollector(Collector):
    """A prometheus_client collector reading one engine."""

    def __init__(self, engine: Engine, model_name: str) -> None:
        self.engine = engine
        self.model_name = model_name

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=_LABELS)
        g.add_metric([self.model_name, "0"], value)
        return g

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        c = CounterMetricFamily(name, doc, labels=_LABELS)
        c.add_metric([self.model_name, "0"], value)
        return c

    def _histogram(self, name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
        m = HistogramMetricFamily(name, doc, labels=_LABELS)
        m.add_metric([self.model_name, "0"], h.cumulative(), h.total)
        return m

    def collect(self) -> Iterator[Metric]:
        e, s, cfg = self.engine, self.engine.stats, self.engine.config
        yield self._gauge("vllm:num_requests_running", "Requests in the running batch.",
                          len(e.running))
        yield self._gauge("vllm:num_requests_waiting", "Requests waiting to be scheduled.",
                          len(e.waiting))
        yield self._gauge("vllm:kv_cache_usage_perc",
                          "KV-cache usage: 1 means 100 percent (blocks held by requests).",
                          e.kv.usage)
        yield self._gauge("vllm:gpu_cache_usage_perc",
                          "Deprecated alias of vllm:kv_cache_usage_perc.", e.kv.usage)
        info = GaugeMetricFamily(
            "vllm:cache_config_info", "Information of the KV cache config.",
            labels=["block_size", "num_gpu_blocks", "cache_dtype", "enable_prefix_caching",
                    "gpu_memory_utilization", "model_name", "engine"])
        info.add_metric([str(cfg.block_size), str(cfg.num_gpu_blocks), "auto", "True", "0.9",
                         self.model_name, "0"], 1.0)
        yield info
        lora = GaugeMetricFamily(
            "vllm:lora_requests_info", "Running stats on LoRA requests.",
            labels=["running_lora_adapters", "waiting_lora_adapters", "max_lora"])
        lora.add_metric([",".join(e.running_loras()), ",".join(e.waiting_loras()),
                         str(cfg.max_loras)], time.time())
        yield lora
        yield self._counter("vllm:prefix_cache_queries",
                            "Prompt tokens looked up in the prefix cache.", s.prefix_queries)
        yield self._counter("vllm:prefix_cache_hits",
                            "Prompt tokens found in the prefix cache.", s.prefix_hits)
        yield self._counter("vllm:prompt_tokens", "Prefill tokens processed.", s.prompt_tokens)
        yield self._counter("vllm:generation_tokens", "Generation tokens processed.",
                            s.generation_tokens)
        yield self._counter("vllm:num_preemptions", "Cumulative preemptions.", s.preemptions)
        success = CounterMetricFamily("vllm:request_success", "Successfully finished requests.",
                                      labels=[*_LABELS, "finished_reason"])
        for reason in ("stop", "length", "abort", *sorted(set(s.success) - {"stop", "length"})):
            success.add_metric([self.model_name, "0", reason], s.success.get(reason, 0))
        yield success
        for name, doc, h in (
            ("vllm:time_to_first_token_seconds", "Time to first token (s).", s.ttft),
            ("vllm:inter_token_latency_seconds", "Inter-token latency (s).", s.itl),
            ("vllm:time_per_output_token_seconds", "Deprecated alias of ITL (s).", s.itl),
            ("vllm:e2e_request_latency_seconds", "End-to-end request latency (s).", s.e2e),
            ("vllm:request_queue_time_seconds", "Time spent waiting (s).", s.queue),
            ("vllm:request_prefill_time_seconds", "Time spent in prefill (s).", s.prefill),
            ("vllm:request_decode_time_seconds", "Time spent in decode (s).", s.decode),
            ("vllm:request_inference_time_seconds", "Time spent running (s).", s.inference),
            ("vllm:request_prompt_tokens", "Prompt tokens per request.", s.prompt_hist),
            ("vllm:request_generation_tokens", "Generation tokens per request.",
             s.generation_hist),
            ("lamplighter_sim_step_overrun_seconds",
             "Actual minus modelled step end (s); near 0 means the loop keeps up.",
             s.step_overrun),
        ):
            yield self._histogram(name, doc, h)
        yield self._counter("lamplighter_sim_steps", "Engine steps run.", s.steps)
        yield self._counter("lamplighter_sim_kv_evictions",
                            "Cached KV blocks evicted (LRU).", e.kv.evictions)
        yield self._gauge("lamplighter_sim_speed_factor", "Step-time multiplier of this pod.",
                          cfg.speed_factor)


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
