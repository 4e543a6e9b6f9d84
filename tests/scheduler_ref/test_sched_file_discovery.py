"""file-discovery: the guide's endpoints file, one-line errors, and runtime reloads (watchFile)
in-process and through the real CLI started from the guide's own config.yaml."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from scheduler_ref.datastore import Datastore
from scheduler_ref.discovery.file import DiscoveryFileError, FileWatcher, load_endpoints_file
from tests.support import DATA
from tests.support.extproc_messages import body_msgs, headers_msg, set_headers
from tests.support.scheduler_inputs import FakeMetricsServer, run_cli, running

GUIDE = DATA / "guide" / "current" / "no-kubernetes"


def _write_atomically(path: Path, text: str) -> None:
    """What the guide tells users to do: write a temp file, then ``mv`` it over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _endpoints_yaml(*entries: tuple[str, str, int]) -> str:
    lines = ["endpoints:"]
    for name, address, port in entries:
        lines += [f"- name: {name}", f"  address: {address}", f'  port: "{port}"',
                  "  labels: {model: m}"]
    return "\n".join(lines) + "\n"


def test_guide_endpoints_file_parses() -> None:
    (e,) = load_endpoints_file(GUIDE / "endpoints.yaml")
    assert (e.key, e.name, e.namespace) == ("127.0.0.1:8000", "vllm-0", "default")
    assert e.labels == {"model": "Qwen/Qwen3-32B"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("endpoints:\n- {name: a, address: vllm-0.local, port: '8000'}",
         "endpoints[0].address: must be a literal IPv4 address, got 'vllm-0.local'"),
        ("endpoints:\n- {name: a, address: 10.0.0.1, port: 8000}",
         "endpoints[0].port: must be a port number as a string (e.g. \"8000\"), got 8000"),
        ("endpoints:\n- {name: a, address: 10.0.0.1, port: '70000'}",
         "endpoints[0].port: must be a port number as a string (e.g. \"8000\"), got '70000'"),
        ("endpoints:\n- {address: 10.0.0.1, port: '8000'}",
         "endpoints[0].name: is required (a non-empty string), got None"),
        ("endpoints:\n- {name: a, address: 10.0.0.1, port: '1'}\n"
         "- {name: a, address: 10.0.0.2, port: '1'}", "endpoints[1].name: duplicate endpoint"),
        ("endpoints:\n- {name: a, address: 10.0.0.1, port: '1', label: {}}",
         "endpoints[0].label: unknown field"),
        ("endpoints:\n- {name: a, address: 10.0.0.1, port: '1', labels: {x: 1}}",
         "endpoints[0].labels: must map strings to strings, got {'x': 1}"),
        ("pods: []", "must be a mapping with an 'endpoints' list"),
        ("endpoints: [", "invalid YAML"),
    ],
)
def test_bad_endpoints_file_names_file_field_and_value(tmp_path: Path, text: str,
                                                       needle: str) -> None:
    f = tmp_path / "endpoints.yaml"
    f.write_text(text)
    with pytest.raises(DiscoveryFileError) as info:
        load_endpoints_file(f)
    assert str(info.value).startswith(f"{f}: ")
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_atomic_rewrite_replaces_the_pool_and_a_bad_one_keeps_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "endpoints.yaml"
    f.write_text(_endpoints_yaml(("a", "10.0.0.1", 8000)))
    ds = Datastore()
    ds.set_endpoints(load_endpoints_file(f))
    watcher = FileWatcher(str(f), ds.set_endpoints)
    assert not watcher.check()  # unchanged file: nothing to do
    _write_atomically(f, _endpoints_yaml(("a", "10.0.0.1", 8000), ("b", "10.0.0.2", 8000)))
    assert watcher.check()
    assert ds.keys() == {"10.0.0.1:8000", "10.0.0.2:8000"}
    with caplog.at_level(logging.ERROR, logger="scheduler_ref.discovery"):
        _write_atomically(f, "endpoints:\n- {name: c, address: not-an-ip, port: '1'}\n")
        assert not watcher.check()
    assert ds.keys() == {"10.0.0.1:8000", "10.0.0.2:8000"}  # last good pool kept
    (record,) = caplog.records
    assert "keeping the last good pool" in record.getMessage()
    assert "endpoints[0].address" in record.getMessage()
    _write_atomically(f, _endpoints_yaml(("b", "10.0.0.2", 8000)))
    assert watcher.check()
    assert ds.keys() == {"10.0.0.2:8000"}


def _guide_config(tmp_path: Path, endpoints: Path) -> Path:
    """The guide's config.yaml with only the endpoints path rewritten (as the harness does)."""
    text = (GUIDE / "config.yaml").read_text()
    assert "path: /etc/epp/endpoints.yaml" in text
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text.replace("path: /etc/epp/endpoints.yaml", f"path: {endpoints}"))
    return cfg


def _route(grpc_port: object) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
        stub = pb_grpc.ExternalProcessorStub(ch)
        body = b'{"model": "m", "prompt": "hello"}'
        out = list(stub.Process(iter([headers_msg(), *body_msgs(body)]), timeout=10))
    return set_headers(out[0]).get("x-gateway-destination-endpoint", "")


def test_cli_discovers_from_the_guide_config_and_follows_rewrites(tmp_path: Path) -> None:
    with FakeMetricsServer() as a, FakeMetricsServer() as b:
        endpoints = tmp_path / "endpoints.yaml"
        endpoints.write_text(_endpoints_yaml(("pod-a", "127.0.0.1", a.port)))
        cfg = _guide_config(tmp_path, endpoints)
        with running("--config-file", str(cfg), "--secure-serving=false", "--grpc-port", "0",
                     "--grpc-health-port", "0", "--metrics-port", "0") as (info, lines):
            assert info["endpoints"] == [a.key]
            assert info["endpoints_file"] == str(endpoints)
            deadline = time.monotonic() + 20
            while _route(info["grpc_port"]) != a.key:
                assert time.monotonic() < deadline, "never routed to the file's endpoint"
                time.sleep(0.1)
            _write_atomically(endpoints, _endpoints_yaml(("pod-b", "127.0.0.1", b.port)))
            while _route(info["grpc_port"]) != b.key:
                assert time.monotonic() < deadline, "rewrite of the endpoints file not applied"
                time.sleep(0.1)
            assert any("endpoints file reloaded" in ln for ln in lines)


def test_cli_refuses_both_endpoints_flag_and_file_discovery(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(_endpoints_yaml(("a", "127.0.0.1", 1)))
    cfg = _guide_config(tmp_path, endpoints)
    res = run_cli("--config-file", str(cfg), "--endpoints", "127.0.0.1:1")
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line == (f"scheduler-ref: --endpoints and the config's file-discovery ({endpoints}) "
                    "both name the endpoints: give only one")


def test_cli_bad_endpoints_file_exits_2_naming_file_field_value(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text("endpoints:\n- {name: a, address: 10.0.0.1, port: 8000}\n")
    res = run_cli("--config-file", str(_guide_config(tmp_path, endpoints)))
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"scheduler-ref: endpoints file error: {endpoints}: "
                           "endpoints[0].port: must be a port number as a string")
    assert "got 8000" in line


def test_cli_without_any_endpoint_source_exits_2() -> None:
    res = run_cli()
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert "no endpoints: give --endpoints" in line
