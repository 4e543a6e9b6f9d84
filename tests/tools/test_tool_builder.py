"""The pinned-tool builder: cache hits, cache keys, and a clear error without Go."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.tools import TOOLS, build
from fixtures.tools.builder import cache_key, entry_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_second_build_of_the_same_pin_is_a_cache_hit() -> None:
    first = build(TOOLS["etcd"])  # cold in a fresh cache, a hit when CI built the tools already
    started = time.monotonic()
    second = build(TOOLS["etcd"])
    assert second.cached, "the second build of an unchanged pin must not run go build"
    assert second.directory == first.directory
    assert (second.directory / "etcd").is_file()
    assert time.monotonic() - started < 10


def test_changing_the_ldflags_changes_the_cache_entry() -> None:
    pinned = TOOLS["epp"]
    changed = dataclasses.replace(pinned, ldflags=(*pinned.ldflags, "-X main.extra=1"))
    assert cache_key(pinned, "go1.26") == cache_key(pinned, "go1.26")
    assert cache_key(pinned, "go1.26") != cache_key(changed, "go1.26")
    assert cache_key(pinned, "go1.26") != cache_key(pinned, "go1.27")
    assert entry_dir(pinned).name.startswith("epp-v1.5.0-")


def _run_cli(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "fixtures.tools", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_missing_go_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _run_cli("build", "epp", path=str(tmp_path))  # an empty PATH directory: no go
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Go toolchain" in done.stderr and "install" in done.stderr


def test_unknown_binary_is_one_line_and_exit_2() -> None:
    done = _run_cli("path", "kubectl-nope", path=os.environ["PATH"])
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown tool or binary 'kubectl-nope'")
    assert done.stderr.count("\n") == 1


def test_a_tool_with_several_binaries_asks_which_one() -> None:
    done = _run_cli("path", "kube", path=os.environ["PATH"])
    assert done.returncode == 2
    assert "kube-apiserver" in done.stderr and done.stderr.count("\n") == 1
