"""The real CLI as a subprocess: --help, readiness line, serving, clean SIGTERM, bad flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from simulator.__main__ import ArgsError, check_args
from tests.support.simulator_servers import run_cli


def test_help_documents_units_and_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "simulator", "--help"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    for flag in ("--model", "--port", "--pod-name", "--host", "--max-num-seqs",
                 "--max-num-batched-tokens", "--num-gpu-blocks", "--block-size",
                 "--step-base-ms", "--prefill-ms-per-token", "--decode-ms-per-seq",
                 "--speed-factor", "--failure-rate", "--failure-types", "/admin/config",
                 "x-sim-force-error"):
        assert flag in out
    assert "ms (default: 10.0)" in out and "tokens (default: 16)" in out


def test_cli_serves_and_stops_on_sigterm() -> None:
    env_pod = {"POD_NAME": "env-pod", "POD_NAMESPACE": "env-ns"}
    os.environ.update(env_pod)
    try:
        with run_cli("--model", "m1", "--time-scale", "0.1") as (proc, url):
            assert httpx.get(url + "/health").status_code == 200
            r = httpx.post(url + "/v1/completions",
                           json={"model": "m1", "prompt": "hi", "max_tokens": 3})
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
            assert r.headers["x-inference-pod"] == "env-pod"
            assert r.headers["x-inference-namespace"] == "env-ns"
            assert r.headers["x-inference-port"] == url.rsplit(":", 1)[1]
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(10) == 0
    finally:
        for key in env_pod:
            os.environ.pop(key, None)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_cli_streams_on_either_event_loop(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with run_cli("--loop", loop, "--time-scale", "0.1") as (proc, url):
        body = {"model": "sim-model", "prompt": "hi", "max_tokens": 5, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body) as r:
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert len(events) == 6 and events[-1] == "data: [DONE]"
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0


@pytest.mark.parametrize(("flags", "named"), [
    (["--num-gpu-blocks", "0"], "argument --num-gpu-blocks: must be >= 1, got '0'"),
    (["--time-scale", "nan"], "argument --time-scale: expected a finite number, got 'nan'"),
    (["--port", "70000"], "argument --port: must be in [0, 65535], got '70000'"),
    (["--failure-rate", "2"], "argument --failure-rate: must be in [0, 1], got '2'"),
    (["--log-level", "loud"], "argument --log-level: invalid choice: 'LOUD'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bad_flags_exit_2_with_one_line_naming_flag_and_value(flags: list[str],
                                                             named: str) -> None:
    out = subprocess.run([sys.executable, "-m", "simulator", *flags], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"llm-sim: error: {named}"), out.stderr


def test_check_args_refuses_what_the_cli_refuses_and_accepts_the_rest() -> None:
    with pytest.raises(ArgsError, match="--block-size: must be >= 1, got '-1'"):
        check_args(["--block-size", "-1"])
    check_args(["--block-size", "32", "--time-scale", "0.5"])  # control: good flags pass
