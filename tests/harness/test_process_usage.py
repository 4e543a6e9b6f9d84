"""Reading a process's resident memory, descriptors and CPU time from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.process_usage import (
    HARNESS,
    LOAD_GENERATOR,
    OTHER,
    CpuMeter,
    cpu_seconds,
    machine_busy_seconds,
    read_usage,
)


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


def test_cpu_seconds_are_read_after_a_process_name_with_spaces_and_parentheses(
        tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", *["0"] * 10, str(3 * ticks), str(ticks), *["0"] * 30]  # utime 3 s, stime 1 s
    (tmp_path / "7" / "stat").write_text(f"7 (a (b) c) {' '.join(fields)}\n")
    assert cpu_seconds(7, proc=tmp_path) == 4.0
    with pytest.raises(ProcessLookupError, match="pid 8"):
        cpu_seconds(8, proc=tmp_path)


def test_the_meter_names_a_busy_child_process_and_the_harness() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend = time.process_time() + 0.6\n"
                              "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        meter = CpuMeter({"busy": child.pid, "gone": 2**22 + 7}).start()
        time.sleep(1.0)
        cores = meter.stop()
    finally:
        child.kill()
        child.wait()
    assert set(cores) == {HARNESS, LOAD_GENERATOR, OTHER, "busy"}  # a gone pid is left out
    assert cores["busy"] > 0.2, cores
    assert cores[HARNESS] < 0.5, cores


def test_the_machine_busy_time_leaves_out_idle_and_io_wait(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    values = [5, 1, 2, 100, 50, 1, 1, 0, 0, 0]
    (tmp_path / "stat").write_text("cpu  " + " ".join(str(v * ticks) for v in values) +
                                   "\ncpu0 1 2 3\n")
    assert machine_busy_seconds(tmp_path) == 10.0
