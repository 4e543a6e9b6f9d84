"""``pytest suites --target cluster -m <provider> --collect-only`` selects by provider marker
and contacts no cluster (KUBECONFIG points nowhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cluster.paths import repo_root


@pytest.mark.parametrize("marker", ["gke", "istio"])
def test_provider_marker_selects_its_params(marker: str, tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "absent")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--target", "cluster", "-m", marker,
         "--collect-only", "-q", "-p", "no:cacheprovider", "--report-dir", str(tmp_path)],
        cwd=repo_root(), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    deploy = [i for i in ids if i.startswith("suites/deploy/")]
    assert len(deploy) == 17, proc.stdout
    assert all(f"[{marker}" in i for i in ids), proc.stdout
