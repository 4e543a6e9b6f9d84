"""Wall time of ``make conformance`` after install (goal: ≤ 5 minutes on 2 cores).

Runs the conformance suites exactly as ``make conformance`` does (``pytest suites --target
local``, the venv already installed) into a scratch report folder, then prints the total wall
time and each suite's share from the run's ``report.yaml``.

    .venv/bin/python benchmarks/conformance_wall_time.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="where the run's report goes (default: a temporary folder)")
    args = parser.parse_args()
    report_dir = args.report_dir or Path(tempfile.mkdtemp(prefix="ll-conformance-"))
    command = [sys.executable, "-m", "pytest", "suites", "--target", "local",
               "-p", "no:cacheprovider", "-q", "--report-dir", str(report_dir)]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    report = yaml.safe_load((report_dir / "latest" / "report.yaml").read_text())
    per_suite: dict[str, float] = defaultdict(float)
    for name, suite in report["suites"].items():
        per_suite[name] += sum(t["durationSeconds"] for t in suite["tests"])
    load = os.getloadavg()
    print(f"conformance: exit {result.returncode}, result {report['summary']['result']}")
    for name, seconds in sorted(per_suite.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<10} {seconds:7.1f} s")
    verdict = "meets" if wall <= GOAL_S else "misses"
    print(f"wall time {wall:.1f} s ({verdict} the {GOAL_S:.0f} s goal); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores {os.cpu_count()}")
    print(f"report: {report_dir / 'latest' / 'report.yaml'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
