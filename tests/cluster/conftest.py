"""Fixtures for the cluster-target tests: the emulated API and a deploy-suite runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.cluster.paths import guide_fixture_dir, repo_root

from .emulator import Emulator, running_emulator
from .seed import FAKE_HF_TOKEN

DATA = repo_root() / "tests" / "data"
NAMESPACE = "llm-d-inference-scheduler"


def require_guide_fixtures(version: str) -> None:
    """The rendered guide objects are part of the repository: missing means broken."""
    assert guide_fixture_dir(version).is_dir(), f"{guide_fixture_dir(version)} is missing"


@pytest.fixture(autouse=True)
def _one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Targets here are built as in a run without xdist (the install namespace is the one
    given); tests of the per-worker namespace set ``PYTEST_XDIST_WORKER`` themselves."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        yield emu


@dataclass
class SuiteRun:
    rc: int
    output: str
    run_dir: Path


def run_deploy_suite(emulator: Emulator, tmp_path: Path, version: str, provider: str,
                     *extra: str, namespace: str = NAMESPACE,
                     recordings: str | None = None) -> SuiteRun:
    """``pytest suites/deploy --target cluster --no-install`` in a subprocess, against the
    emulator (kubeconfig) with helm answered from recordings (``recordings/<version>``
    unless named)."""
    kubeconfig = emulator.kubeconfig(tmp_path / "kubeconfig")
    report_dir = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    # the user who created the token secret has the token in env; that is what is masked
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
