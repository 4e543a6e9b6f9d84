"""Data-layer plugins: where endpoints come from and how their metrics are read.

``file-discovery`` (llm-d-router) names an endpoints file; ``metrics-data-source`` and
``core-metrics-extractor`` (GAIE) say how /metrics is fetched and which families feed the
scorers. They carry parameters only: discovery/file.py and scrape.py do the work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from scheduler_ref.params import ParamError, Params
from scheduler_ref.plugins.base import DataLayerPlugin

__all__ = [
    "BUILTIN_ENGINES",
    "CoreMetricsExtractor",
    "EngineMetrics",
    "FileDiscoveryPlugin",
    "MetricsDataSource",
]


class FileDiscoveryPlugin(DataLayerPlugin):
    """Endpoints from a YAML file (``path``); ``watchFile`` reloads it when it is replaced."""

    type_name = "file-discovery"

    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.path = params.string("path", default="")
        if not self.path:
            raise ParamError("path", "is required (the endpoints file)")
        self.watch = params.boolean("watchFile", default=False)


class MetricsDataSource(DataLayerPlugin):
    """How /metrics is fetched; defaults are GAIE v1.5.0's (http, /metrics, skip verify)."""

    type_name = "metrics-data-source"

    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.scheme = params.string("scheme", default="http")
        if self.scheme not in ("http", "https"):
            raise ParamError("scheme", f"must be http or https, got {self.scheme!r}")
        self.path = params.string("path", default="/metrics")
        if not self.path.startswith("/"):
            raise ParamError("path", f"must start with '/', got {self.path!r}")
        self.insecure_skip_verify = params.boolean("insecureSkipVerify", default=True)
        self.explicit = set(params.raw)  # fields the config set (flags fill the others)


@dataclass(frozen=True)
class EngineMetrics:
    """Metric specs of one engine type (``name{label=value}`` filters allowed)."""

    name: str
    queued: str = ""
    running: str = ""
    kv_usage: str = ""
    lora: str = ""
    cache_info: str = ""
    block_size_label: str = "block_size"
    num_blocks_label: str = "num_gpu_blocks"
    block_size_spec: str = ""
    num_blocks_spec: str = ""


# GAIE v1.5.0's built-in engine configs (core-metrics-extractor defaults).
BUILTIN_ENGINES: dict[str, EngineMetrics] = {
    "vllm": EngineMetrics("vllm", "vllm:num_requests_waiting", "vllm:num_requests_running",
                          "vllm:kv_cache_usage_perc", "vllm:lora_requests_info",
                          "vllm:cache_config_info"),
    "sglang": EngineMetrics("sglang", "sglang:num_queue_reqs", "sglang:num_running_reqs",
                            "sglang:token_usage", "", "sglang:cache_config_info",
                            block_size_label="page_size", num_blocks_label="num_pages"),
    "trtllm-serve": EngineMetrics(
        "trtllm-serve", "trtllm_num_requests_waiting", "trtllm_num_requests_running",
        "trtllm_kv_cache_utilization", block_size_spec="trtllm_kv_cache_tokens_per_block",
        num_blocks_spec="trtllm_kv_cache_max_blocks"),
    "triton-tensorrt-llm": EngineMetrics(
        "triton-tensorrt-llm", "nv_trt_llm_request_metrics{request_type=waiting}",
        "nv_trt_llm_request_metrics{request_type=scheduled}",
        "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
        block_size_spec="nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=tokens_per}",
        num_blocks_spec="nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=max}"),
}

_ENGINE_FIELDS = {
    "queuedRequestsSpec": "queued", "runningRequestsSpec": "running", "kvUsageSpec": "kv_usage",
    "loraSpec": "lora", "cacheInfoSpec": "cache_info",
    "cacheBlockSizeLabelName": "block_size_label", "cacheNumBlocksLabelName": "num_blocks_label",
    "cacheBlockSizeSpec": "block_size_spec", "cacheNumBlocksSpec": "num_blocks_spec",
}


def _engine(i: int, raw: Any) -> EngineMetrics:
    where = f"engineConfigs[{i}]"
    if not isinstance(raw, dict):
        raise ParamError(where, f"must be a mapping, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ParamError(f"{where}.name", "is required")
    if name == "default":
        raise ParamError(f"{where}.name", "'default' is reserved")
    values: dict[str, str] = {}
    for key, value in raw.items():
        if key == "name":
            continue
        if key not in _ENGINE_FIELDS:
            raise ParamError(f"{where}.{key}", "unknown field")
        if not isinstance(value, str):
            raise ParamError(f"{where}.{key}", f"must be a string, got {value!r}")
        values[_ENGINE_FIELDS[key]] = value
    return replace(EngineMetrics(name), **values)


class CoreMetricsExtractor(DataLayerPlugin):
    """Which metric families feed queue / running / KV usage / LoRA / cache info, per engine.

    The engine of an endpoint is its ``engineLabelKey`` label, else ``defaultEngine``;
    ``engineConfigs`` replace the built-in config of the same name or add new engines.
    """

    type_name = "core-metrics-extractor"

    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.engine_label = params.string("engineLabelKey",
                                          default="inference.networking.k8s.io/engine-type")
        self.default_engine = params.string("defaultEngine", default="vllm")
        raw = params.raw.get("engineConfigs") or []
        if not isinstance(raw, list):
            raise ParamError("engineConfigs", f"must be a list, got {raw!r}")
        self.engines = dict(BUILTIN_ENGINES)
        self.configured: set[str] = set()
        for i, item in enumerate(raw):
            engine = _engine(i, item)
            self.engines[engine.name] = engine
            self.configured.add(engine.name)
        if self.default_engine not in self.engines:
            raise ParamError("defaultEngine", f"unknown engine {self.default_engine!r} (known: "
                             f"{', '.join(sorted(self.engines))})")

    def engine_for(self, labels: dict[str, str]) -> EngineMetrics:
        return self.engines.get(labels.get(self.engine_label, ""),
                                self.engines[self.default_engine])
