"""The real local stack (simulators + scheduler_ref + Envoy) end to end, and up/down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from fixtures.localstack import LocalStack, LocalStackConfig, LocalStackError, SimulatorParams
from fixtures.options import HarnessOptions
from fixtures.stack import Stack
from fixtures.targets.local import LocalTarget

from .util import PYTHON, REPO_ROOT, pid_alive

pytestmark = pytest.mark.timeout(90)


def _wait_gone(pids: list[int], seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def _completion(url: str, model: str, stream: bool) -> httpx.Response:
    body = {"model": model, "prompt": "The quick brown fox", "max_tokens": 4, "stream": stream}
    return httpx.post(f"{url}/v1/completions", json=body, timeout=20)


def test_local_target_serves_through_gateway_and_baseline(tmp_path: Path) -> None:
    target = LocalTarget(HarnessOptions(pods=2), tmp_path)
    try:
        stack = target.up()
        assert len(stack.pods) == 2
        for url in (stack.gateway_url, stack.baseline_url):
            plain = _completion(url, stack.model, stream=False)
            assert plain.status_code == 200, plain.text
            assert plain.json()["choices"][0]["text"]
            assert plain.headers["x-inference-pod"] in {p.name for p in stack.pods}
            streamed = _completion(url, stack.model, stream=True)
            assert streamed.status_code == 200
            events = [line for line in streamed.text.splitlines() if line.startswith("data:")]
            assert events[-1] == "data: [DONE]" and len(events) >= 2
        assert httpx.get(stack.epp_metrics_url or "", timeout=5).status_code == 200
        diagnostics = tmp_path / "diagnostics"
        target.collect_diagnostics(diagnostics)
        states = json.loads((diagnostics / "processes.json").read_text())
        assert {s["name"] for s in states} == {"sim-0", "sim-1", "scheduler_ref", "envoy"}
        assert all(s["alive"] for s in states)
        assert Stack.read(diagnostics / "stack.json").gateway_url == stack.gateway_url
        assert (tmp_path / "logs" / "envoy.log").exists()
        assert (tmp_path / "logs" / "envoy.yaml").exists()
        assert (diagnostics / "logs" / "scheduler_ref.log").exists()
    finally:
        target.down()
    assert not _wait_gone([s["pid"] for s in states])


def test_a_pod_that_cannot_start_is_named_with_its_log(tmp_path: Path) -> None:
    config = LocalStackConfig(log_dir=tmp_path, pods=1,
                              simulator=SimulatorParams(extra_args=("--no-such-flag",)))
    local = LocalStack(config)
    with pytest.raises(LocalStackError) as info:
        local.start()
    assert "'sim-0'" in str(info.value)
    assert "--no-such-flag" in str(info.value)
    assert not [p for p in local.processes() if p.alive]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([PYTHON, "-m", "fixtures.stack_cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.json"
    where = ("--stack-file", str(stack_file))
    up = _cli("up", "--pods", "2", *where, "--log-dir", str(tmp_path / "logs"), cwd=tmp_path)
    pids: list[int] = []
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-1] == str(stack_file)
        stack = Stack.read(stack_file)
        pids = [stack.extras["supervisor_pid"], *(p["pid"] for p in stack.extras["processes"])]
        status = _cli("status", *where, cwd=tmp_path)
        assert status.returncode == 0, status.stdout
        assert _completion(stack.gateway_url, stack.model, stream=False).status_code == 200
    finally:
        down = _cli("down", *where, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert not _wait_gone(pids)
    assert not stack_file.exists()
    again = _cli("down", *where, cwd=tmp_path)
    assert again.returncode == 0 and "nothing running" in again.stdout
    assert _cli("status", *where, cwd=tmp_path).returncode == 1


@pytest.mark.timeout(180)
def test_kill_9_of_the_up_supervisor_takes_its_stack_along(tmp_path: Path) -> None:
    """No handler runs on SIGKILL: the kernel (PDEATHSIG) must stop Envoy, the EPP and the
    pods; the next ``up`` then starts cleanly over the stale stack and pid files."""
    stack_file = tmp_path / "stack.json"
    where = ("--stack-file", str(stack_file))
    up = _cli("up", "--pods", "2", *where, "--log-dir", str(tmp_path / "logs"), cwd=tmp_path)
    children: list[int] = []
    try:
        assert up.returncode == 0, up.stderr
        stack = Stack.read(stack_file)
        children = [p["pid"] for p in stack.extras["processes"]]
        names = {p["name"] for p in stack.extras["processes"]}
        assert names == {"sim-0", "sim-1", "scheduler_ref", "envoy"}, names
        os.kill(stack.extras["supervisor_pid"], signal.SIGKILL)
        assert not _wait_gone(children), "stack processes outlived their kill -9'ed supervisor"
        again = _cli("up", "--pods", "1", *where, "--log-dir", str(tmp_path / "logs2"),
                     cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        fresh = Stack.read(stack_file)
        assert _completion(fresh.gateway_url, fresh.model, stream=False).status_code == 200
    finally:
        _cli("down", *where, cwd=tmp_path)
        for pid in children:
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)


_HOLDING_RUN = """
import time
from pathlib import Path
from fixtures.localstack import LocalStack, LocalStackConfig

def test_hold_a_stack():
    with LocalStack(LocalStackConfig(log_dir=Path({logs!r}), pods=1)):
        Path({marker!r}).touch()
        time.sleep(300)
"""


@pytest.mark.timeout(180)
def test_kill_9_of_a_pytest_run_holding_a_stack_takes_the_stack_along(tmp_path: Path) -> None:
    """What ``kill -9`` of a running ``make conformance`` leaves: nothing of its stack."""
    marker = tmp_path / "stack-is-up"
    (tmp_path / "test_hold.py").write_text(_HOLDING_RUN.format(logs=str(tmp_path / "logs"),
                                                               marker=str(marker)))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run = subprocess.Popen(
        [PYTHON, "-m", "pytest", "test_hold.py", "-q", "-p", "no:cacheprovider", "-c",
         "pytest.ini", "--rootdir", str(tmp_path)], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert run.poll() is None, "the pytest run holding a stack exited early"
            assert time.monotonic() < deadline, "the stack did not come up"
            time.sleep(0.2)
        children = _children_of(run.pid)
        assert len(children) >= 3, children  # a pod, scheduler_ref, Envoy
        run.kill()
        run.wait(10)
        assert not _wait_gone(children), "stack processes outlived the kill -9'ed pytest"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in children:
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def _children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc: each task's children list)."""
    tasks = Path(f"/proc/{pid}/task")
    return sorted({int(child) for task in tasks.iterdir()
                   for child in (task / "children").read_text().split()})


@pytest.mark.parametrize(("flags", "named"), [
    (("--speed-factors", "1,fast"), "--speed-factors '1,fast'"),
    (("--pods", "0"), "--pods 0"),
])
def test_up_refuses_bad_flags_with_exit_2(tmp_path: Path, flags: tuple[str, ...],
                                          named: str) -> None:
    up = _cli("up", "--stack-file", str(tmp_path / "stack.json"), "--log-dir",
              str(tmp_path / "logs"), *flags, cwd=tmp_path)
    assert up.returncode == 2, up.stderr
    assert named in up.stderr
    assert not (tmp_path / "stack.pid").exists()
