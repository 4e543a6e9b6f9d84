"""The deploy suite as a user runs it to verify an existing install.

``pytest suites/deploy --target cluster --no-install`` in a subprocess against any API server
(the emulator's, or a kwok cluster's real one) named by a kubeconfig, with helm answered from
``tests/data/recordings/<name>`` (the rendered installs have no helm release).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fixtures.cluster.paths import repo_root
from tests.support import DATA

__all__ = ["FAKE_HF_TOKEN", "SuiteRun", "failed_tests", "not_supported_reasons",
           "run_deploy_suite"]

# What the user who created the token secret has in env: the value the run must mask.
FAKE_HF_TOKEN = "hf_lamplighterFAKEtoken1234567890"


@dataclass
class SuiteRun:
    rc: int
    output: str
    run_dir: Path


def run_deploy_suite(kubeconfig: Path, tmp_path: Path, version: str, provider: str,
                     *extra: str, namespace: str, recordings: str | None = None) -> SuiteRun:
    """One deploy-suite run (``recordings/<version>`` answers helm unless named)."""
    report_dir = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(KUBECONFIG=str(kubeconfig), HF_TOKEN=FAKE_HF_TOKEN,
               LAMPLIGHTER_COMMAND_RECORDINGS=str(DATA / "recordings" / (recordings or version)))
    argv = [sys.executable, "-m", "pytest", "suites/deploy", "--target", "cluster",
            "--gateway", provider, "--guide-version", version, "--no-install",
            "--namespace", namespace, "--report-dir", str(report_dir),
            "-p", "no:cacheprovider", "-q", "-rfs", "--timeout", "60", *extra]
    proc = subprocess.run(argv, cwd=repo_root(), env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    runs = [p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, f"expected one run folder in {report_dir}: {runs}"
    return SuiteRun(proc.returncode, proc.stdout + proc.stderr, runs[0])


def failed_tests(output: str) -> set[str]:
    """The names (with parameters) of the tests pytest's summary lists as FAILED."""
    return {line.split("::")[1].split(" ")[0] for line in output.splitlines()
            if line.startswith("FAILED ")}


def not_supported_reasons(output: str) -> list[str]:
    """The reasons of the tests reported *not supported* (``-rs`` lines), sorted."""
    return sorted(line.split("not supported: ", 1)[1] for line in output.splitlines()
                  if line.startswith("SKIPPED") and "not supported: " in line)
