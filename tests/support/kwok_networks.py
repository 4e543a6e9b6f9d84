"""A loopback pod network per pytest-xdist worker, so kwok clusters can run side by side.

Each kwok cluster's pods get addresses from its nodes' CIDRs, and the processes standing for
them bind the chart's fixed container ports there: two clusters on one network would collide.
A worker runs one test file at a time (``--dist loadfile``), so one network per worker is
enough. 127.16.0.0/16 upwards, apart from the suites' 127.1/16 and the fault matrix's 127.2/16.
"""

from __future__ import annotations

import ipaddress
import os

__all__ = ["worker_pod_network"]

FIRST_OCTET = 16


def worker_pod_network() -> ipaddress.IPv4Network:
    """This worker's network (``gwN`` -> 127.(16+N).0.0/16; no xdist -> 127.16.0.0/16)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0)
    return ipaddress.IPv4Network(f"127.{FIRST_OCTET + index}.0.0/16")
