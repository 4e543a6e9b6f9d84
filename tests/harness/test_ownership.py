"""lamplighter signals a pid only while it is provably the process it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fixtures.ownership import ProcessIdentity, identify, still_ours

from .util import REPO_ROOT, pid_alive


def test_a_running_process_is_ours_until_it_exits() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        recorded = identify(child.pid)
        assert recorded is not None and still_ours(recorded)
    finally:
        child.kill()
        child.wait()
    assert not still_ours(recorded)


def test_a_killed_process_not_yet_reaped_is_not_ours() -> None:
    """A zombie keeps its pid and start time; it must not block a new ``up``."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        recorded = identify(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while still_ours(recorded) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.returncode is None, "reaped: the test no longer looks at a zombie"
        assert not still_ours(recorded)
    finally:
        child.kill()
        child.wait()


def test_a_reused_pid_with_another_start_time_is_not_ours() -> None:
    me = identify(os.getpid())
    assert me is not None
    impostor = ProcessIdentity(me.pid, me.start_ticks + 1, me.boot_id)
    assert not still_ours(impostor)
    assert not still_ours(ProcessIdentity(me.pid, me.start_ticks, "another-boot"))


def test_a_record_without_proof_is_never_ours() -> None:
    assert ProcessIdentity.from_dict({"pid": 1}) is None
    assert not still_ours(None)


def test_down_leaves_a_foreign_process_named_by_a_stale_pid_file_alone(tmp_path: Path) -> None:
    foreign = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        stack_file = tmp_path / "stack.json"
        # What an old lamplighter wrote (bare pid) and what a stale record with another start
        # time looks like: neither may lead to a signal.
        for record in (f"{foreign.pid}\n",
                       json.dumps({"pid": foreign.pid, "start_ticks": 1, "boot_id": "x"})):
            stack_file.with_suffix(".pid").write_text(record)
            stack_file.write_text(json.dumps({
                "gateway_url": "http://127.0.0.1:1", "baseline_url": "http://127.0.0.1:1",
                "pods": [], "extras": {"processes": [
                    {"name": "sim-0", "pid": foreign.pid, "start_ticks": 1, "boot_id": "x"}]}}))
            down = subprocess.run([sys.executable, "-m", "fixtures.stack_cli", "down",
                                   "--stack-file", str(stack_file)], cwd=REPO_ROOT,
                                  capture_output=True, text=True, timeout=60)
            assert down.returncode == 0, down.stderr
            assert "nothing running" in down.stdout
            assert pid_alive(foreign.pid), f"down killed a foreign process: {down.stdout}"
    finally:
        foreign.kill()
        foreign.wait()
