"""The real CLI as a subprocess: exit 2 on bad config; health, /metrics and routing when up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scheduler_ref.cli import parse_args
from tests.support.extproc_messages import body_msgs, headers_msg, set_headers
from tests.support.scheduler_inputs import FakeMetricsServer, run_cli, running


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


# -- secure serving and startup failures -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "want"),
    [
        ((), True),  # the EPP's default
        (("--secure-serving=false",), False),
        (("--secure-serving", "false"), False),
        (("-secure-serving=false",), False),
        (("--secureServing=false",), False),
        (("--secure-serving",), True),
        (("--secure-serving=true",), True),
        (("--secure-serving", "true", "--endpoints", "127.0.0.1:1"), True),
    ],
)
def test_secure_serving_spellings(args: tuple[str, ...], want: bool,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEDULER_REF_SECURE_SERVING", raising=False)
    s = parse_args(["--endpoints", "127.0.0.1:1", *args])
    assert s.secure_serving is want
    assert s.endpoints == "127.0.0.1:1"


def test_secure_serving_env_sets_the_default_and_the_flag_wins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_REF_SECURE_SERVING", "false")
    assert parse_args(["--endpoints", "127.0.0.1:1"]).secure_serving is False
    assert parse_args(["--endpoints", "127.0.0.1:1", "--secure-serving"]).secure_serving is True


def test_host_defaults_to_loopback() -> None:
    assert parse_args(["--endpoints", "127.0.0.1:1"]).host == "127.0.0.1"


def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_bad_flag_value_is_one_line() -> None:
    line = _one_line(run_cli("--endpoints", "127.0.0.1:1", "--secure-serving=maybe"))
    assert line.startswith("scheduler-ref: argument --secure-serving")
    assert "'maybe'" in line


def test_missing_cert_files_exit_2_naming_the_flag_and_file(tmp_path: Path) -> None:
    line = _one_line(run_cli("--endpoints", "127.0.0.1:1", "--cert-path", str(tmp_path),
                             "--grpc-port", "0", "--grpc-health-port", "0",
                             "--metrics-port", "0"))
    assert line == f"scheduler-ref: --cert-path {tmp_path}: tls.key: no such file or directory"


def test_openssl_failure_exits_2(tmp_path: Path) -> None:
    fake = tmp_path / "openssl"
    fake.write_text("#!/bin/sh\necho 'req: cannot write key' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    res = subprocess.run([sys.executable, "-m", "scheduler_ref", "--endpoints", "127.0.0.1:1",
                          "--grpc-port", "0", "--grpc-health-port", "0", "--metrics-port", "0"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert _one_line(res) == ("scheduler-ref: --secure-serving: openssl could not make a "
                              "self-signed certificate: req: cannot write key")


@pytest.mark.parametrize("flag", ["--grpc-port", "--grpc-health-port", "--metrics-port"])
def test_port_in_use_exits_2_naming_the_flag(flag: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        ports = {"--grpc-port": "0", "--grpc-health-port": "0", "--metrics-port": "0",
                 flag: port}
        args = [x for kv in ports.items() for x in kv]
        line = _one_line(run_cli("--endpoints", "127.0.0.1:1", "--secure-serving=false", *args))
    assert line == (f"scheduler-ref: {flag}: cannot listen on 127.0.0.1:{port}: "
                    "address already in use")


def test_default_serves_tls_with_a_self_signed_certificate() -> None:
    with running("--endpoints", "127.0.0.1:1", "--grpc-port", "0", "--grpc-health-port", "0",
                 "--metrics-port", "0") as (info, _):
        assert info["secure_serving"] is True and info["host"] == "127.0.0.1"
        import ssl

        pem = ssl.get_server_certificate(("127.0.0.1", int(str(info["grpc_port"]))))
        assert "BEGIN CERTIFICATE" in pem
        creds = grpc.ssl_channel_credentials(root_certificates=pem.encode())
        opts = [("grpc.ssl_target_name_override", "scheduler-ref")]
        with grpc.secure_channel(f"127.0.0.1:{info['grpc_port']}", creds, opts) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            resp = stub.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        plain = grpc.insecure_channel(f"127.0.0.1:{info['grpc_port']}")
        with plain as ch, pytest.raises(grpc.RpcError):  # plaintext is refused
                health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service="liveness"), timeout=3)
