"""Ports: distinct, locked across processes, actually free."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from fixtures.ports import (
    PortAllocator,
    PortExhaustedError,
    PortLockDirError,
    default_lock_dir,
)

from .util import PYTHON, REPO_ROOT


def test_reserved_ports_are_distinct_and_bindable(tmp_path: Path) -> None:
    with PortAllocator(lock_dir=tmp_path) as ports:
        taken = ports.reserve_many(20)
        assert len(set(taken)) == 20
        assert all(20000 <= p < 32000 for p in taken)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", taken[0]))


def test_another_process_cannot_take_a_held_port(tmp_path: Path) -> None:
    with PortAllocator(port_range=(24000, 24002), lock_dir=tmp_path) as ports:
        held = ports.reserve_many(2)
        script = (
            "from pathlib import Path\n"
            "from fixtures.ports import PortAllocator, PortExhaustedError\n"
            f"a = PortAllocator(port_range=(24000, 24002), lock_dir=Path({str(tmp_path)!r}))\n"
            "try:\n    a.reserve()\nexcept PortExhaustedError:\n    print('exhausted')\n"
        )
        out = subprocess.run([PYTHON, "-c", script], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=30)
        assert out.stdout.strip() == "exhausted", out.stderr
        assert sorted(held) == [24000, 24001]
    with PortAllocator(port_range=(24000, 24002), lock_dir=tmp_path) as again:
        assert again.reserve() in (24000, 24001)


def test_a_bound_port_is_skipped(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        busy.listen()
        with PortAllocator(port_range=(port, port + 1), lock_dir=tmp_path) as ports, \
                pytest.raises(PortExhaustedError):
            ports.reserve()


def test_the_default_lock_folder_is_per_user(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_lock_dir().name == f"lamplighter-ports-{os.getuid()}"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_lock_dir() == tmp_path / "lamplighter-ports"


def test_the_lock_folder_is_created_private(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    allocator = PortAllocator(lock_dir=folder)
    allocator.reserve()
    allocator.release_all()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_symlinked_lock_folder_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    link = tmp_path / "locks"
    link.symlink_to(real)
    with pytest.raises(PortLockDirError, match="symlink"):
        PortAllocator(lock_dir=link).reserve()


def test_a_lock_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to hand the folder to another uid")
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(PortLockDirError, match="belongs to uid 65534"):
        PortAllocator(lock_dir=folder).reserve()
