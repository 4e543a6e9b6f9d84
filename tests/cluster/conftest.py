"""Fixtures for the cluster-target tests: the emulated API and a deploy-suite runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster.paths import guide_fixture_dir
from tests.support.deploy_suite import SuiteRun, run_deploy_suite

from .emulator import Emulator, running_emulator

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


def emulated_deploy_suite(emulator: Emulator, tmp_path: Path, version: str, provider: str,
                          *extra: str, namespace: str = NAMESPACE,
                          recordings: str | None = None) -> SuiteRun:
    """The deploy suite against the emulator (``tests.support.deploy_suite``)."""
    return run_deploy_suite(emulator.kubeconfig(tmp_path / "kubeconfig"), tmp_path, version,
                            provider, *extra, namespace=namespace, recordings=recordings)
