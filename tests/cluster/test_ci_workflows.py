"""The ci/ workflows are GitHub Actions YAML and run the documented pytest commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fixtures.cluster.paths import repo_root

WORKFLOWS = sorted((repo_root() / "ci" / "github").glob("*.yaml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_is_valid_github_actions(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert {"name", True, "jobs"} <= set(data), "on: parses as True in YAML 1.1"
    for job in data["jobs"].values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
        runs = " ".join(s.get("run", "") for s in job["steps"])
        assert "pytest suites" in runs and "--target" in runs
        uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
            "actions/upload-artifact")]
        assert uploads and uploads[0]["if"] == "always()" and uploads[0]["with"]["path"] == \
            "reports/"


def test_three_workflows() -> None:
    assert [p.stem for p in WORKFLOWS] == ["gke", "nightly-gpu-conformance", "pr-kind-e2e"]
