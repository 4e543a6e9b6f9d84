"""Metrics scraping: spec label filters, several series per family (data-parallel engines),
per-engine specs from core-metrics-extractor, and the scrape target of file-discovery."""

from __future__ import annotations

import asyncio

import pytest

from scheduler_ref.datastore import Datastore
from scheduler_ref.params import Params
from scheduler_ref.plugins.datalayer import BUILTIN_ENGINES, CoreMetricsExtractor, EngineMetrics
from scheduler_ref.scrape import MetricNames, MetricSpec, Scraper, parse_metrics
from scheduler_ref.types import Endpoint
from tests.support.scheduler_inputs import FakeMetricsServer

VLLM = MetricNames.from_engine(BUILTIN_ENGINES["vllm"])

TWO_ENGINES = """\
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3
vllm:num_requests_waiting{engine="1",model_name="m"} 4
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 1
vllm:num_requests_running{engine="1",model_name="m"} 2
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.6
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.8
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",num_gpu_blocks="512"} 1
"""


def test_data_parallel_series_sum_counts_and_average_usage() -> None:
    got = parse_metrics(TWO_ENGINES, VLLM)
    assert got["waiting"] == 7 and got["running"] == 3
    assert got["kv_usage"] == pytest.approx(0.7)  # not 1.4: a fraction is averaged
    assert (got["block_size"], got["num_gpu_blocks"]) == (16, 512)


def test_label_filter_selects_one_series() -> None:
    names = MetricNames.from_engine(EngineMetrics(
        "vllm", 'vllm:num_requests_waiting{engine="1"}', "vllm:num_requests_running{engine=0}",
        "vllm:kv_cache_usage_perc{engine=1}", "", "vllm:cache_config_info"))
    got = parse_metrics(TWO_ENGINES, names)
    assert (got["waiting"], got["running"]) == (4, 1)
    assert got["kv_usage"] == pytest.approx(0.8)


def test_metric_spec_parsing() -> None:
    assert MetricSpec.parse("a:b{x=1, y=\"two\"}") == MetricSpec("a:b", (("x", "1"),
                                                                       ("y", "two")))
    assert MetricSpec.parse("") is None
    with pytest.raises(ValueError, match="bad label matcher"):
        MetricSpec.parse("a{x}")


def test_triton_engine_reads_gauges_with_label_filters() -> None:
    page = """\
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{request_type="waiting"} 5
nv_trt_llm_request_metrics{request_type="scheduled"} 2
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"} 0.25
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per"} 32
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max"} 900
"""
    got = parse_metrics(page, MetricNames.from_engine(BUILTIN_ENGINES["triton-tensorrt-llm"]))
    assert (got["waiting"], got["running"], got["kv_usage"]) == (5, 2, 0.25)
    assert (got["block_size"], got["num_gpu_blocks"]) == (32, 900)


def test_extractor_picks_the_engine_by_pod_label() -> None:
    ex = CoreMetricsExtractor("x", Params({"engineConfigs": [
        {"name": "vllm", "kvUsageSpec": "vllm:gpu_cache_usage_perc"}]}))
    assert ex.engine_for({}).kv_usage == "vllm:gpu_cache_usage_perc"
    sglang = {"inference.networking.k8s.io/engine-type": "sglang"}
    assert ex.engine_for(sglang).queued == "sglang:num_queue_reqs"


def test_scrape_uses_metrics_host_when_given() -> None:
    async def main(port: int) -> dict[str, object]:
        ds = Datastore()
        ds.set_endpoints([Endpoint(key="10.255.0.1:8000", name="p",
                                   metrics_host=f"127.0.0.1:{port}")])
        scraper = Scraper(ds, lambda: 5.0, timeout=5)
        await scraper.start()
        try:
            assert await scraper.scrape_once("10.255.0.1:8000")
        finally:
            await scraper.stop()
        (e,) = ds.snapshot()
        return {"waiting": e.waiting, "time": e.metrics_time}

    with FakeMetricsServer(waiting=9) as server:
        assert asyncio.run(main(server.port)) == {"waiting": 9, "time": 5.0}
