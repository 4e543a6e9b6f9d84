"""``pytest suites --target cluster -m <provider> --collect-only`` selects by provider marker
and contacts no cluster (KUBECONFIG points nowhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cluster.paths import repo_root

CURRENT_GUIDE_TESTS = ("test_standalone_envoy_proxy", "test_epp_flags", "test_epp_discovery")
HELMFILE_ERA_TESTS = ("test_helm_releases_deployed_with_profile_charts",
                      "test_httproute_in_install_namespace", "test_monitoring_crds_installed")


def _collect(tmp_path: Path, *args: str) -> list[str]:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "absent")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--target", "cluster", *args,
         "--collect-only", "-q", "-p", "no:cacheprovider", "--report-dir", str(tmp_path)],
        cwd=repo_root(), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("marker", ["gke", "istio"])
def test_provider_marker_selects_its_params(marker: str, tmp_path: Path) -> None:
    ids = _collect(tmp_path, "-m", marker)
    deploy = [i for i in ids if i.startswith("suites/deploy/")]
    assert len(deploy) == 20, "\n".join(ids)
    assert all(f"[{marker}" in i for i in ids), "\n".join(ids)


@pytest.mark.parametrize("marker", ["gke", "istio"])
@pytest.mark.parametrize("version", [None, "current"])
def test_current_guide_tests_are_listed_beside_the_helmfile_era_ones(
        marker: str, version: str | None, tmp_path: Path) -> None:
    """Whatever guide the run verifies, ``-m gke``/``-m istio`` list the current guide's
    checks (standalone Envoy, EPP flags, discovery) beside the helmfile-era ones; a check
    the session's guide lacks reports not supported when it runs."""
    ids = _collect(tmp_path, "-m", marker, *(["--guide-version", version] if version else []))
    names = {i.split("::")[-1] for i in ids}
    for test in (*CURRENT_GUIDE_TESTS, *HELMFILE_ERA_TESTS):
        assert f"{test}[{marker}]" in names, "\n".join(sorted(names))


def test_standalone_marker_selects_the_current_guides_standalone_mode(tmp_path: Path) -> None:
    ids = _collect(tmp_path, "-m", "standalone", "--guide-version", "current")
    deploy = [i for i in ids if i.startswith("suites/deploy/")]
    assert "suites/deploy/test_router.py::test_standalone_envoy_proxy[standalone]" in deploy
    assert len(deploy) == 20 and all("[standalone" in i for i in ids), "\n".join(ids)
