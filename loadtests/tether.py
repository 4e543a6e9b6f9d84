"""Locust's ``--processes`` workers die with their master.  (Locust side.)

Locust forks those workers from the master and stops them only from an ``atexit`` hook, which
a SIGKILL of the master (or of pytest, which takes the master along) never runs: they would
go on until their master-heartbeat timeout. A fork hook, registered when the master imports
the locustfile, asks Linux to SIGKILL each forked child when the master dies
(``prctl(PR_SET_PDEATHSIG)``), and ends a child whose master died before that took effect.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["tie_forked_children"]

PR_SET_PDEATHSIG = 1


def tie_forked_children() -> None:
    """Every child this process (or a child of it) forks from now on dies with its parent
    (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    parent = [os.getpid()]  # set in the parent just before each fork
    os.register_at_fork(before=lambda: parent.__setitem__(0, os.getpid()),
                        after_in_child=lambda: _die_with(parent[0]))


def _die_with(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        sys.stderr.write(f"lamplighter: prctl(PR_SET_PDEATHSIG) failed: errno "
                         f"{ctypes.get_errno()}\n")
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
