"""The EPP's own Prometheus metrics (EPP.md §5 names), on a private registry.

Names and labels follow GAIE so dashboards and the harness's assertions work on either EPP.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from scheduler_ref.types import Decision, Endpoint

__all__ = ["EppMetrics", "metrics_app"]

_MODEL = ["model_name", "target_model_name"]
_LATENCY = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10,
            15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600)
_TOKENS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536,
           131072, 262144, 524288, 1048576)
_SCHED = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1)
_RATIO = tuple(i / 10 for i in range(11))


class EppMetrics:
    """Every metric the EPP exposes that scheduler_ref can honestly compute."""

    def __init__(self, pool_name: str = "") -> None:
        self.pool = pool_name
        r = self.registry = CollectorRegistry()
        p = "inference_objective_"
        self.requests = Counter(p + "request", "Requests per model.", _MODEL, registry=r)
        self.errors = Counter(p + "request_error", "Failed requests per model.",
                              [*_MODEL, "error_code"], registry=r)
        self.duration = Histogram(p + "request_duration_seconds", "Request latency.", _MODEL,
                                  buckets=_LATENCY, registry=r)
        self.ttft = Histogram(p + "request_ttft_seconds", "Time to first token.", _MODEL,
                              buckets=_LATENCY, registry=r)
        self.request_sizes = Histogram(p + "request_sizes", "Request body bytes.", _MODEL,
                                       buckets=_TOKENS, registry=r)
        self.input_tokens = Histogram(p + "input_tokens", "Prompt tokens.", _MODEL,
                                      buckets=_TOKENS, registry=r)
        self.output_tokens = Histogram(p + "output_tokens", "Completion tokens.", _MODEL,
                                       buckets=_TOKENS, registry=r)
        self.cached_tokens = Histogram(p + "prompt_cached_tokens", "Cached prompt tokens.",
                                       _MODEL, buckets=_TOKENS, registry=r)
        self.running = Gauge(p + "running_requests", "In-flight requests.", ["model_name"],
                             registry=r)
        self.pool_kv = Gauge("inference_pool_average_kv_cache_utilization",
                             "Mean KV-cache utilization.", ["name"], registry=r)
        self.pool_queue = Gauge("inference_pool_average_queue_size", "Mean waiting queue.",
                                ["name"], registry=r)
        self.pool_ready = Gauge("inference_pool_ready_pods", "Endpoints with fresh metrics.",
                                ["name"], registry=r)
        x = "inference_extension_"
        self.e2e = Histogram(x + "scheduler_e2e_duration_seconds", "Scheduling cycle time.",
                             buckets=_SCHED, registry=r)
        self.plugin = Histogram(x + "plugin_duration_seconds", "Plugin time per call.",
                                ["extension_point", "plugin_type", "plugin_name"],
                                buckets=_SCHED, registry=r)
        self.index_size = Gauge(x + "prefix_indexer_size", "Prefix index entries.", registry=r)
        self.hit_ratio = Histogram(x + "prefix_indexer_hit_ratio",
                                   "Matched / total prefix blocks of the picked endpoint.",
                                   buckets=_RATIO, registry=r)
        self.hit_bytes = Histogram(x + "prefix_indexer_hit_bytes", "Matched prefix bytes.",
                                   buckets=_TOKENS, registry=r)
        for m in (self.pool_kv, self.pool_queue, self.pool_ready):
            m.labels(pool_name).set(0)
        self.index_size.set(0)

    def decision(self, d: Decision, seconds: float, block_size: int) -> None:
        self.e2e.observe(seconds)
        for (point, ptype, name), secs in d.plugin_seconds.items():
            self.plugin.labels(point, ptype, name).observe(secs)
        if d.prefix_total_blocks:
            matched = d.prefix_match_blocks.get(d.picked, 0)
            self.hit_ratio.observe(matched / d.prefix_total_blocks)
            self.hit_bytes.observe(matched * block_size)

    def pool_state(self, endpoints: Sequence[Endpoint], fresh: Sequence[Endpoint],
                   index_size: int) -> None:
        n = len(fresh)
        self.pool_ready.labels(self.pool).set(n)
        self.pool_kv.labels(self.pool).set(sum(e.kv_usage for e in fresh) / n if n else 0)
        self.pool_queue.labels(self.pool).set(sum(e.waiting for e in fresh) / n if n else 0)
        self.index_size.set(index_size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_app(metrics: EppMetrics) -> web.Application:
    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app
