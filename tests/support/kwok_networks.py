"""A loopback pod network per pytest-xdist worker, so kwok clusters can run side by side.

Each kwok cluster's pods get addresses from its nodes' CIDRs, and the processes standing for
them bind the chart's fixed container ports there: two clusters on one network would collide
(GAIE's EPP binds every interface, so it also gets ports of the worker's own).
A worker runs one test file at a time (``--dist loadfile``), so one network per worker is
enough. 127.16.0.0/16 upwards, apart from the suites' 127.1/16 and the fault matrix's 127.2/16.
"""

from __future__ import annotations

import ipaddress
import os

__all__ = ["worker_epp_port_shift", "worker_pod_network"]

FIRST_OCTET = 16
EPP_PORT_STEP = 1000  # gw0's EPP on 10002/10003/10090, gw1's on 11002/...


def _worker_index() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def worker_pod_network() -> ipaddress.IPv4Network:
    """This worker's network (``gwN`` -> 127.(16+N).0.0/16; no xdist -> 127.16.0.0/16)."""
    return ipaddress.IPv4Network(f"127.{FIRST_OCTET + _worker_index()}.0.0/16")


def worker_epp_port_shift() -> int:
    """How far this worker's kwok clusters move their EPP's ports: GAIE's EPP binds every
    interface, so its own network does not keep it apart from another worker's."""
    return EPP_PORT_STEP * (_worker_index() + 1)
