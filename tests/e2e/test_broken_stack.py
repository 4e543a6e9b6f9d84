"""A broken stack fails loudly and usefully: kill the EPP, and the suites say so.

Real processes end to end: ``lamplighter up`` starts the local stack in the background, the
test kills the endpoint picker, then runs the inference suite against the stack file in a
separate pytest process and reads what a user would read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.stack import Stack

REPO = Path(__file__).resolve().parents[2]
LAMPLIGHTER = [sys.executable, "-m", "fixtures.cli"]


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def stack_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stack.json"
    up = _run([*LAMPLIGHTER, "up", "--pods", "2", "--stack-file", str(path),
               "--log-dir", str(tmp_path / "logs")], timeout=120)
    try:
        assert up.returncode == 0, f"lamplighter up failed:\n{up.stdout}\n{up.stderr}"
        assert up.stdout.strip().splitlines()[-1] == str(path), up.stdout
        yield path
    finally:
        down = _run([*LAMPLIGHTER, "down", "--stack-file", str(path)], timeout=60)
        assert down.returncode == 0, f"lamplighter down failed:\n{down.stdout}\n{down.stderr}"


def test_dead_epp_fails_the_suites_naming_the_epp(stack_file: Path, tmp_path: Path) -> None:
    stack = Stack.read(stack_file)
    epp = [p for p in stack.extras["processes"] if p["name"] == "scheduler_ref"]
    assert epp, f"no scheduler_ref process in {stack.extras['processes']}"
    os.killpg(int(epp[0]["pid"]), signal.SIGKILL)

    # The data path too, not only the preflight: Envoy is FailClose, so a request through
    # the gateway must fail at once rather than reach a pod without the EPP's decision.
    started = time.monotonic()
    answer = httpx.post(f"{stack.gateway_url}/v1/completions", timeout=30, json={
        "model": stack.model, "prompt": "is anyone there", "max_tokens": 2})
    assert answer.status_code >= 500, f"FailClose let a request through: {answer.status_code}"
    assert time.monotonic() - started < 5, "FailClose took longer than 5 s to refuse"

    reports = tmp_path / "reports"
    run = _run([sys.executable, "-m", "pytest", "suites/inference", "--stack-file",
                str(stack_file), "--report-dir", str(reports), "-p", "no:cacheprovider",
                "-q", "-x"], timeout=180)
    output = run.stdout + run.stderr
    assert run.returncode != 0, f"the suites passed with the EPP dead:\n{output}"
    assert "the endpoint picker is gone" in output, output
    run_dir = (reports / "latest").resolve()
    assert (run_dir / "report.yaml").is_file()
    logs = sorted(p.name for p in (run_dir / "logs").glob("*.log"))
    assert "scheduler_ref.log" in logs and "envoy.log" in logs, logs
    assert len([n for n in logs if n.startswith("sim-")]) == 2, logs
