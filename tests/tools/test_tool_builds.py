"""Pinned tool builds: a missing Go is one clear line, a second build is a cache hit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures.tools import build as tools

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_without_go_the_build_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty folder: no go anywhere
    result = subprocess.run([sys.executable, "-m", "fixtures.tools", "build", "epp"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Go toolchain" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_every_build_module_pins_its_dependencies() -> None:
    for tool in tools.TOOLS.values():
        folder = tool.module_path()
        assert (folder / "go.sum").stat().st_size > 0, f"{tool.name}: no go.sum"
        assert tool.package in (folder / "tools.go").read_text()
        assert tool.version in (folder / "go.mod").read_text()


def test_a_changed_pin_builds_afresh_and_an_unchanged_one_does_not(tmp_path: Path) -> None:
    tool = tools.TOOLS["epp"]
    first = tools.cached_path(tool, "go1.26.8")
    assert first == tools.cached_path(tool, "go1.26.8")
    assert first != tools.cached_path(tool, "go1.27.0"), "the Go version is part of the key"


@pytest.mark.slow
def test_the_epp_builds_once_and_then_comes_from_the_cache(
        monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tools.build("epp", log=False)  # cold in CI (minutes), cached afterwards
    assert os.access(binary, os.X_OK)
    calls: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(list(cmd))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(tools.subprocess, "run", recording_run)
    assert tools.build("epp", log=False) == binary
    assert not [c for c in calls if "build" in c], f"a cached tool was rebuilt: {calls}"
    help_text = real_run([str(binary), "--help"], capture_output=True, text=True, timeout=60)
    assert "--endpoint-selector" in help_text.stdout + help_text.stderr
