"""The pure half of loadtests must never pull in locust or gevent (see loadtests/__init__)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "loadtests.api",
    "loadtests.cli",
    "loadtests.slo",
    "loadtests.workloads",
    "loadtests.samples",
    "loadtests.timings",
    "loadtests.stats",
    "loadtests.arrivals",
    "loadtests.validity",
    "loadtests.plots",
    "loadtests.peers",
    "loadtests.runconfig",
]


def test_pure_modules_do_not_import_locust_or_gevent() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {PURE!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in "
        "('locust', 'gevent', 'geventhttpclient', 'grpc'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
