"""Reading a process's resident memory and descriptors from /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.process_usage import read_usage


def test_this_process_has_memory_and_descriptors() -> None:
    usage = read_usage(os.getpid())
    assert usage.rss_mib > 1 and usage.fds >= 3  # stdin, stdout, stderr at least


def test_a_fake_proc_entry_is_read_in_kilobytes(tmp_path: Path) -> None:
    (tmp_path / "7" / "fd").mkdir(parents=True)
    for fd in ("0", "1", "5"):
        (tmp_path / "7" / "fd" / fd).touch()
    (tmp_path / "7" / "status").write_text("Name:\tenvoy\nVmRSS:\t  2048 kB\n")
    usage = read_usage(7, proc=tmp_path)
    assert (usage.rss_bytes, usage.rss_mib, usage.fds) == (2048 * 1024, 2.0, 3)


def test_a_gone_process_or_a_zombie_is_a_lookup_error(tmp_path: Path) -> None:
    with pytest.raises(ProcessLookupError, match="pid 9"):
        read_usage(9, proc=tmp_path)
    (tmp_path / "8" / "fd").mkdir(parents=True)
    (tmp_path / "8" / "status").write_text("Name:\tzombie\nState:\tZ (zombie)\n")
    with pytest.raises(ProcessLookupError, match="no VmRSS"):
        read_usage(8, proc=tmp_path)
