"""Library entry for suites: run a load test in its own Locust process, get samples back.

Locust is never imported here: it monkey-patches the whole process with gevent, after which
streaming gRPC and asyncio hang. ``run_load`` starts ``python -m locust -f
loadtests/locustfile.py`` (headless, or with its web UI), which writes raw samples to
``out_dir/samples.jsonl``; the run is bounded by ``max_requests`` and by time (the pacer's
stages plus a drain, and ``timeout_s`` here as the last resort).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from loadtests.runconfig import LoadSpec, Stage, spec_to_json
from loadtests.samples import Sample, read_samples
from loadtests.stats import summarize
from loadtests.validity import Validity, assess

__all__ = ["LoadProcess", "LoadResult", "LoadSpec", "Stage", "Validity", "run_load"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STARTUP_GRACE_S = 60.0


@dataclass
class LoadResult:
    samples: list[Sample]
    samples_path: Path
    exit_code: int
    validity: Validity
    log_path: Path
    summary: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    out_dir: Path = Path(".")


def locust_command(spec: LoadSpec, out_dir: Path, web_port: int | None = None) -> list[str]:
    """The Locust command line for ``spec`` (headless unless ``web_port`` is given)."""
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--host",
        spec.base_url,
        "--ll-spec",
        spec_to_json(spec),
        "--ll-out",
        str(out_dir),
        "--stop-timeout",
        f"{max(1, round(spec.request_timeout_s))}s",
        "--csv",
        str(out_dir / "locust"),
        "--html",
        str(out_dir / "locust.html"),
        "--loglevel",
        "INFO",
        "--only-summary",
    ]
    if web_port is None:
        cmd.append("--headless")
    else:
        cmd += ["--autostart", "--web-host", "127.0.0.1", "--web-port", str(web_port)]
    if spec.processes > 1:
        cmd += ["--processes", str(spec.processes)]
    return cmd


Launcher = Callable[[list[str]], list[str]]


class LoadProcess:
    """A running Locust process (context manager); always reaped, also on failure.

    ``launcher`` rewrites the command line before it runs: the harness passes
    ``fixtures.processes.tied_to_parent`` so a ``kill -9`` of pytest takes Locust along
    (this package does not import the harness).
    """

    def __init__(self, spec: LoadSpec, out_dir: Path, web_port: int | None = None,
                 launcher: Launcher | None = None) -> None:
        spec.validate()
        self.spec = spec
        self.out_dir = Path(out_dir)
        self.web_port = web_port
        self._launcher = launcher
        self.log_path = self.out_dir / "locust.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LoadProcess:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "spec.json").write_text(spec_to_json(self.spec))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        with self.log_path.open("wb") as log:
            argv = locust_command(self.spec, self.out_dir, self.web_port)
            self.proc = subprocess.Popen(
                self._launcher(argv) if self._launcher else argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        return self

    def wait(self, timeout_s: float | None = None) -> int:
        assert self.proc is not None
        if timeout_s is None:
            timeout_s = self.spec.total_s() + self.spec.request_timeout_s + STARTUP_GRACE_S
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(
                f"load run exceeded {timeout_s:.0f}s; log: {self.log_path}"
            ) from None

    def stop(self) -> None:
        """Terminate the whole process group: master and forked workers, also when the
        master is gone already (its workers would be left running)."""
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            if self._group_ended(grace):
                return

    def _group_ended(self, grace: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + grace
        while True:
            self.proc.poll()  # reap the master: a zombie is still a member of its group
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def result(self) -> LoadResult:
        assert self.proc is not None
        samples_path = self.out_dir / "samples.jsonl"
        samples = read_samples(samples_path) if samples_path.exists() else []
        meta_path = self.out_dir / "run_meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        validity = assess(meta, samples)
        if not meta:
            validity.reasons.append(
                f"Locust process ended without run metadata; see {self.log_path}"
            )
        summary = summarize(samples)
        (self.out_dir / "summary.json").write_text(
            json.dumps({"summary": summary, "validity": validity.to_dict()}, indent=2)
        )
        return LoadResult(
            samples,
            samples_path,
            self.proc.returncode or 0,
            validity,
            self.log_path,
            summary,
            meta,
            self.out_dir,
        )

    def __enter__(self) -> LoadProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_load(spec: LoadSpec, out_dir: Path, timeout_s: float | None = None,
             launcher: Launcher | None = None) -> LoadResult:
    """Run ``spec`` headless in a Locust subprocess and return its samples and validity."""
    with LoadProcess(spec, out_dir, launcher=launcher) as proc:
        proc.wait(timeout_s)
        return proc.result()


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200 (servers the tests and benchmarks start)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s}s")
        time.sleep(0.05)
