"""The process runner: readiness, early exit, kill mid-run, no orphans after SIGTERM or
kill -9 of the parent."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fixtures.ownership import identify, still_ours
from fixtures.processes import ProcessStartError, ProcessSupervisor, tied_to_parent

from .util import PYTHON, REPO_ROOT, pid_alive


def test_ready_child_logs_to_its_file(supervisor: ProcessSupervisor, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    script = f"import time, pathlib; print('hello'); pathlib.Path({str(marker)!r}).touch(); " \
             "time.sleep(60)"
    proc = supervisor.start_ready("sleeper", [PYTHON, "-c", script], marker.exists, timeout=20)
    assert proc.alive
    assert proc.log_path == tmp_path / "logs" / "sleeper.log"
    supervisor.stop_all()
    assert not proc.alive
    assert "hello" in proc.log_path.read_text()


def test_child_exiting_during_readiness_names_it_and_quotes_its_log(
    supervisor: ProcessSupervisor,
) -> None:
    script = "import sys; print('cannot open model weights'); sys.exit(3)"
    with pytest.raises(ProcessStartError) as info:
        supervisor.start_ready("model-server-0", [PYTHON, "-c", script], lambda: False,
                               timeout=20)
    message = str(info.value)
    assert "'model-server-0'" in message
    assert "exited with code 3" in message
    assert "cannot open model weights" in message
    assert info.value.exited


def test_readiness_deadline_stops_the_child(supervisor: ProcessSupervisor) -> None:
    with pytest.raises(ProcessStartError) as info:
        supervisor.start_ready("slow", [PYTHON, "-c", "import time; time.sleep(60)"],
                               lambda: False, timeout=0.5)
    assert "did not become ready" in str(info.value)
    assert not supervisor.get("slow").alive


def test_child_killed_mid_run_is_reported(supervisor: ProcessSupervisor) -> None:
    proc = supervisor.start("victim", [PYTHON, "-c", "import time; time.sleep(60)"])
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    state = proc.state()
    assert not state.alive
    assert state.exit_code == -signal.SIGKILL
    supervisor.stop_all()  # stopping a dead child is harmless


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
             "print('re' + 'ady', flush=True); time.sleep(60)"
    with ProcessSupervisor(tmp_path, grace=0.5) as sup:
        proc = sup.start("stubborn", [PYTHON, "-c", script])
        proc.wait_ready(lambda: "ready" in proc.log_tail(), timeout=20)
        assert proc.stop(grace=0.5) == -signal.SIGKILL


_PARENT = """
import sys, time
from pathlib import Path
from fixtures.processes import ProcessSupervisor, install_signal_handlers
install_signal_handlers()
out = Path(sys.argv[1])
sup = ProcessSupervisor(out.parent / "logs", grace=1.0)
grandchild = "import subprocess, sys, time; " \\
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \\
    "print(p.pid, flush=True); time.sleep(60)"
procs = [sup.start(f"child{i}", [sys.executable, "-c", grandchild]) for i in range(2)]
for p in procs:
    p.wait_ready(lambda p=p: p.log_tail().strip().splitlines()[-1:] != ["--- x"] and
                 p.log_tail().strip().splitlines()[-1].isdigit(), timeout=20)
pids = [p.pid for p in procs] + [int(p.log_tail().strip().splitlines()[-1]) for p in procs]
out.write_text(" ".join(map(str, pids)))
time.sleep(60)
"""


def test_sigterm_to_parent_leaves_no_orphan(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    parent = subprocess.Popen([PYTHON, "-c", _PARENT, str(pid_file)], cwd=REPO_ROOT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            assert parent.poll() is None, "parent died early"
            time.sleep(0.05)
        pids = [int(p) for p in pid_file.read_text().split()]
        assert len(pids) == 4 and all(pid_alive(p) for p in pids)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=15) == -signal.SIGTERM
        deadline = time.monotonic() + 5
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if pid_alive(p)]
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()


_KILLED_PARENT = """
import subprocess, sys, time
from pathlib import Path
from fixtures.processes import ManagedProcess
sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
tied = ManagedProcess("tied", sleeper, Path(sys.argv[1])).start()
# The negative control: the same child started without the runner outlives the parent.
untied = subprocess.Popen(sleeper, start_new_session=True)
print(tied.pid, untied.pid, flush=True)
time.sleep(120)
"""


def test_a_child_dies_within_seconds_of_its_parent_being_killed_9(tmp_path: Path) -> None:
    """No handler runs on SIGKILL: only PDEATHSIG can take the child along."""
    parent = subprocess.Popen([PYTHON, "-c", _KILLED_PARENT, str(tmp_path / "tied.log")],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    tied = untied = 0
    try:
        assert parent.stdout is not None
        tied, untied = (int(pid) for pid in parent.stdout.readline().split())
        assert pid_alive(tied) and pid_alive(untied)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while pid_alive(tied) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(tied), "the runner's child outlived its kill -9'ed parent"
        assert pid_alive(untied), "negative control: a plain child should have survived"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in (tied, untied):
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_wrapper_keeps_pid_and_becomes_the_command(supervisor: ProcessSupervisor) -> None:
    """Same pid and start time after exec: the recorded identity stays true."""
    proc = supervisor.start("sleeper", [PYTHON, "-c", "import time; time.sleep(60)"])
    assert proc.pid is not None
    before = identify(proc.pid)
    deadline = time.monotonic() + 10
    cmdline: list[str] = []
    while time.monotonic() < deadline:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0")[:-1]
        if cmdline == proc.argv:
            break
        time.sleep(0.05)
    assert cmdline == proc.argv
    assert still_ours(before)


def test_a_missing_program_raises_file_not_found(supervisor: ProcessSupervisor) -> None:
    with pytest.raises(FileNotFoundError):
        supervisor.start("nothing", ["lamplighter-no-such-program"])


def test_children_of_other_threads_are_not_tied_to_a_thread_that_ends() -> None:
    """PDEATHSIG fires when the forking *thread* ends: such children stay with the reaper."""
    argv = [PYTHON, "-c", "pass"]
    assert tied_to_parent(argv)[-3:] == argv and len(tied_to_parent(argv)) > len(argv)
    seen: list[list[str]] = []
    worker = threading.Thread(target=lambda: seen.append(tied_to_parent(argv)))
    worker.start()
    worker.join()
    assert seen == [argv]
