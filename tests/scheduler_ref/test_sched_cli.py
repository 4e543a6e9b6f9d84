"""The real CLI as a subprocess: exit 2 on bad config; health, /metrics and routing when up."""

from __future__ import annotations

import json
import subprocess
import time

import grpc
import httpx
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from extproc_client import body_msgs, headers_msg, set_headers
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sched_support import FakeMetricsServer, run_cli, running


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("plugins: [{type: warp-scorer}]", "plugin 'warp-scorer' (plugins[0]): type: unknown"),
        ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n"
         "- {name: d, plugins: [{pluginRef: nope}]}", "plugin 'nope'"),
        ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n"
         "- {name: d, plugins: [{pluginRef: queue-scorer, weight: heavy}]}",
         "weight: must be a non-negative number, got 'heavy'"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, config: str, needle: str) -> None:
    f = tmp_path / "epp.yaml"
    f.write_text(config)
    res = run_cli("--endpoints", "127.0.0.1:1", "--config-file", str(f))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"scheduler-ref: config error: {f}: ")
    assert needle in lines[0]


def test_bad_duration_flag_exits_2() -> None:
    res = run_cli("--endpoints", "127.0.0.1:1", "--refresh-metrics-interval", "soon")
    assert res.returncode == 2


def test_cli_serves_health_metrics_and_routes() -> None:
    with FakeMetricsServer(waiting=0) as a, FakeMetricsServer(waiting=50, kv=0.9) as b, running(
        "--endpoints", f"{a.key},{b.key}", "--host", "127.0.0.1", "--grpc-port", "0",
        "--grpc-health-port", "0", "--metrics-port", "0", "--refresh-metrics-interval", "50ms",
        "--zap-encoder", "json", "--v", "1", "--secure-serving=false",
    ) as (info, lines):
        with grpc.insecure_channel(f"127.0.0.1:{info['grpc_health_port']}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            status = None
            for _ in range(100):  # eventual: SERVING once a scrape answered
                status = stub.Check(health_pb2.HealthCheckRequest(service="inference-extension"),
                                    timeout=5).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                time.sleep(0.1)
            assert status == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}") as ch:
            stub2 = pb_grpc.ExternalProcessorStub(ch)
            body = json.dumps({"model": "m", "prompt": "p" * 500}).encode()
            out = list(stub2.Process(iter([headers_msg(), *body_msgs(body, 2)]), timeout=10))
            assert set_headers(out[0])["x-gateway-destination-endpoint"] == a.key
        text = httpx.get(f"http://127.0.0.1:{info['metrics_port']}/metrics", timeout=5).text
        for name in ("inference_objective_request_total", "inference_pool_ready_pods",
                     "inference_extension_scheduler_e2e_duration_seconds",
                     "inference_extension_prefix_indexer_size",
                     "inference_extension_prefix_indexer_hit_ratio"):
            assert name in text, name
        deadline = time.monotonic() + 5
        while not any('"msg":"decision"' in ln for ln in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        decision = json.loads(next(ln for ln in lines if '"msg":"decision"' in ln))
        assert decision["picked"] == a.key
        assert set(decision["scores"]) == {a.key, b.key}
        assert any("ignoring flags" in ln and "--zap-encoder" in ln for ln in lines)
