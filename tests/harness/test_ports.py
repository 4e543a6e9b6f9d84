"""Ports: distinct, locked across processes, actually free."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from fixtures.ports import PortAllocator, PortExhaustedError

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
