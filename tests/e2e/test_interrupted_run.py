"""Ctrl-C in the middle of a load run leaves no process behind and still writes the report."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]


def _wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_ctrl_c_mid_load_reaps_every_process(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites/routing", "-k", "hit_rate", "--target",
         "local", "--report-dir", str(reports), "-p", "no:cacheprovider", "-q"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # Wait until the stack is up and a Locust run is under way.
        _wait_for(lambda: list(reports.glob("*/load/*/*/locust.log")), 120,
                  "a load run to start")

        def running() -> str:
            return " ".join(" ".join(p.cmdline()[1:4])
                            for p in psutil.Process(run.pid).children(recursive=True)
                            if _alive(p))

        # Locust's log exists before the PDEATHSIG wrapper has exec'd Locust in its place
        _wait_for(lambda: "locust" in running(), 30, "Locust to replace its wrapper")
        descendants = psutil.Process(run.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()[1:4]) for p in descendants)
        assert "simulator" in names and "scheduler_ref" in names and "locust" in names, names
        run.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends
        output, _ = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    text = output.decode(errors="replace")
    _wait_for(lambda: not [p for p in descendants if _alive(p)], 10, "children to exit")
    run_dir = (reports / "latest").resolve()
    report = yaml.safe_load((run_dir / "report.yaml").read_text())
    assert report["summary"]["result"] == "interrupted", text
    assert list((run_dir / "logs").glob("*.log")), "no process logs kept"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_of_lamplighter_load_takes_locust_along(tmp_path: Path) -> None:
    """By hand, `lamplighter load` is Locust's parent: SIGKILL of it (no handler runs) must not
    leave Locust sending load (the PDEATHSIG wrapper ties it to the CLI)."""
    from fixtures.serving import serving
    from tests.support.load_servers import sse_server_argv

    with serving("sse-server", sse_server_argv(), tmp_path) as server:
        cli = subprocess.Popen(
            [sys.executable, "-m", "loadtests.cli", "load", "--url", server.url, "--model", "m",
             "--type", "random", "--param", "num_prompts=2000", "--param", "input_len=16",
             "--param", "output_len=64", "--users", "4", "--duration", "60",
             "--out", str(tmp_path / "out")],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        try:
            def locust() -> list[psutil.Process]:
                return [p for p in psutil.Process(cli.pid).children(recursive=True)
                        if "locust" in " ".join(p.cmdline())]

            _wait_for(locust, 60, "Locust to start under `lamplighter load`")
            children = locust()
            cli.kill()
            cli.wait(timeout=10)
            _wait_for(lambda: not [p for p in children if _alive(p)], 10,
                      "Locust to exit after its CLI was killed")
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
