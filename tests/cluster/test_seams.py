"""Command runner, timeouts, waits and port-forward: the small seams on their own."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures.cluster import CommandError, WaitTimeout
from fixtures.cluster.commands import RecordedRunner, SubprocessRunner
from fixtures.cluster.portforward import ApiServerProxy, PortForward, service_proxy_url
from fixtures.cluster.redact import MASK, mask_secret_env, register_secret
from fixtures.cluster.timeouts import timeouts_for
from fixtures.cluster.waits import converge, wait_for
from tests.support import DATA


def test_recordings_substitute_namespace_and_postfix(tmp_path: Path) -> None:
    runner = RecordedRunner(DATA / "recordings" / "v0.3", tmp_path / "calls.jsonl")
    out = runner.run(["helm", "list", "-n", "ns1", "-a", "-o", "json"],
                     env={"RELEASE_NAME_POSTFIX": "x1"}).stdout
    names = {r["name"]: r["namespace"] for r in json.loads(out)}
    assert names == {"infra-x1": "ns1", "gaie-x1": "ns1", "ms-x1": "ns1"}
    with pytest.raises(CommandError, match="no recording matches `helm rollback`"):
        runner.run(["helm", "rollback"])


def test_calls_log_is_redacted(tmp_path: Path) -> None:
    register_secret("s3cr3t-value")
    runner = SubprocessRunner(tmp_path / "calls.jsonl")
    assert runner.run(["echo", "s3cr3t-value"]).stdout == "s3cr3t-value\n"
    assert "s3cr3t-value" not in (tmp_path / "calls.jsonl").read_text()
    with pytest.raises(CommandError, match="not installed"):
        runner.run(["lamplighter-no-such-binary"])


def test_timeouts_defaults_per_target_and_overrides() -> None:
    assert timeouts_for("kind").install < timeouts_for("cluster").install
    t = timeouts_for("cluster", {"LAMPLIGHTER_TIMEOUTS": "install=5,convergence_successes=7"})
    assert (t.install, t.convergence_successes) == (5.0, 7)
    with pytest.raises(ValueError, match="unknown timeout 'instal'"):
        timeouts_for("cluster", {"LAMPLIGHTER_TIMEOUTS": "instal=5"})
    with pytest.raises(ValueError, match="LAMPLIGHTER_TIMEOUTS: ready='soon': expected seconds"):
        timeouts_for("cluster", {"LAMPLIGHTER_TIMEOUTS": "ready=soon"})
    with pytest.raises(ValueError, match="delete='0': must be > 0"):
        timeouts_for("cluster", {"LAMPLIGHTER_TIMEOUTS": "delete=0"})


def test_wait_names_the_timeout_and_last_reason() -> None:
    with pytest.raises(WaitTimeout, match=r"gateway: not within 0.2s \(timeout 'x'\): nope"):
        wait_for("gateway", lambda: "nope", timeout=0.2, interval=0.05, timeout_name="x")


def test_convergence_needs_consecutive_successes() -> None:
    answers = iter([None, "503", None, None, None])
    converge("gw", lambda: next(answers), successes=3, timeout=2, interval=0.01)
    with pytest.raises(WaitTimeout, match="convergence"):
        converge("gw", lambda: "503", successes=3, timeout=0.1, interval=0.01)


def test_port_forward_command_and_wait(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        runner = RecordedRunner(DATA / "recordings" / "v0.3", tmp_path / "calls.jsonl")
        forward = PortForward(runner, "ns", "gw-istio", 80, tmp_path / "pf.log",
                              kube_context="kind-x", local_port=port)
        assert forward.start(timeout=2) == f"http://127.0.0.1:{port}"
        forward.stop()
    argv = json.loads((tmp_path / "calls.jsonl").read_text())["argv"]
    assert argv[:7] == ["kubectl", "--context", "kind-x", "-n", "ns", "port-forward",
                        "service/gw-istio"]
    assert argv[7] == f"{port}:80"


def test_api_server_proxy_command_wait_and_service_url(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        runner = RecordedRunner(DATA / "recordings" / "v0.3", tmp_path / "calls.jsonl")
        proxy = ApiServerProxy(runner, tmp_path / "proxy.log", kube_context="kind-x",
                               local_port=port)
        base = proxy.start(timeout=2)
        proxy.stop()
    assert base == f"http://127.0.0.1:{port}"
    argv = json.loads((tmp_path / "calls.jsonl").read_text())["argv"]
    assert argv == ["kubectl", "--context", "kind-x", "proxy", f"--port={port}",
                    "--address=127.0.0.1", r"--accept-hosts=^127\.0\.0\.1$"]
    assert service_proxy_url(base, "ns", "svc", 80) == \
        f"{base}/api/v1/namespaces/ns/services/svc:80/proxy"


def test_a_tunnel_whose_port_never_opens_times_out_naming_it(tmp_path: Path) -> None:
    with socket.socket() as holder:  # a port nobody listens on
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        runner = RecordedRunner(DATA / "recordings" / "v0.3", tmp_path / "calls.jsonl")
        proxy = ApiServerProxy(runner, tmp_path / "proxy.log", local_port=port)
        with pytest.raises(WaitTimeout, match=r"proxy \(API server\)"):
            proxy.start(timeout=0.3, interval=0.05)
        proxy.stop()


def test_spawned_command_and_its_children_are_stopped(tmp_path: Path) -> None:
    """The real runner's spawn (port-forward's path): stop() ends the whole process group."""
    child_pid = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
              f"'import time; time.sleep(60)']); open({str(child_pid)!r}, 'w').write(str(p.pid))"
              "; print('ready', flush=True); time.sleep(60)")
    runner = SubprocessRunner(tmp_path / "calls.jsonl")
    spawned = runner.spawn([sys.executable, "-c", script], log_path=tmp_path / "spawn.log")
    wait_for("child started", lambda: None if child_pid.exists() and child_pid.read_text()
             else "no pid yet", timeout=20, interval=0.05, timeout_name="test")
    pid = int(child_pid.read_text())
    assert spawned.alive()
    spawned.stop()
    spawned.stop()  # idempotent
    assert not spawned.alive()
    wait_for("grandchild gone", lambda: None if not _running(pid) else f"pid {pid} alive",
             timeout=10, interval=0.05, timeout_name="test")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie awaiting its (dead) parent's reaper counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_secret_looking_env_values_are_masked_in_dumps() -> None:
    env_in = [
        {"name": "HF_TOKEN", "value": "hf_literal_in_manifest"},
        {"name": "HF_TOKEN_FROM_SECRET",
         "valueFrom": {"secretKeyRef": {"name": "llm-d-hf-token", "key": "HF_TOKEN"}}},
        {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
    ]
    containers = [{"name": "vllm", "env": env_in}]
    deployment: dict[str, Any] = {"spec": {"template": {"spec": {"containers": containers}}}}
    env = mask_secret_env(deployment)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "HF_TOKEN", "value": MASK}
    assert env[1]["valueFrom"]["secretKeyRef"]["name"] == "llm-d-hf-token"
    assert env[2] == {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == (
        "hf_literal_in_manifest"), "the original object must not be modified"
