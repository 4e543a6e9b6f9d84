"""The ci/ workflows: valid GitHub Actions, pinned actions and tools, the guide at the commit
its profile describes, prerequisites created, and no step that swallows a failure."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cluster.paths import crd_dir, data_dir, repo_root
from fixtures.cluster.profiles import available_versions, load_profile

CI = repo_root() / "ci"
WORKFLOWS = sorted((CI / "github").glob("*.yaml"))
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")
SWALLOWS = re.compile(r"\|\|\s*(true\b|:(?!\S))|\bset \+e\b|\bset \+o pipefail\b")
UPSTREAM_PINS = {"HELM_VERSION": "v3.17.3", "HELM_DIFF_VERSION": "v3.11.0",
                 "HELMFILE_VERSION": "1.1.3"}  # llm-d guides/prereq/client-setup/install-deps.sh


def _load(path: Path) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    return data


def _steps(path: Path) -> list[dict[str, Any]]:
    return [s for job in _load(path)["jobs"].values() for s in job["steps"]]


def _runs(path: Path) -> str:
    return "\n".join(str(s.get("run", "")) for s in _steps(path))


def test_three_workflows() -> None:
    assert [p.stem for p in WORKFLOWS] == ["gke", "nightly-gpu-conformance", "pr-kind-e2e"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_is_valid_github_actions(path: Path) -> None:
    data = _load(path)
    assert {"name", True, "jobs"} <= set(data), "on: parses as True in YAML 1.1"
    for job in data["jobs"].values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
        runs = " ".join(s.get("run", "") for s in job["steps"])
        assert ("pytest suites" in runs and "--target" in runs) or "make nightly" in runs
        uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
            "actions/upload-artifact")]
        assert uploads and uploads[0]["if"] == "always()" and uploads[0]["with"]["path"] == \
            "reports/"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_action_is_pinned_to_a_release_or_commit(path: Path) -> None:
    for step in _steps(path):
        if "uses" in step:
            assert PINNED_ACTION.match(step["uses"]), f"{path.name}: {step['uses']} not pinned"
    assert "azure/setup-helm" not in path.read_text(), "helm comes from ci/install-deps.sh"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_step_swallows_a_failure(path: Path) -> None:
    """bash -eo pipefail everywhere (``shell: bash``), no ``|| true``, no continue-on-error."""
    data = _load(path)
    assert data["defaults"]["run"]["shell"] == "bash", "sh -e ignores failures inside pipes"
    for job in data["jobs"].values():
        assert "continue-on-error" not in job
        for step in job["steps"]:
            assert "continue-on-error" not in step, step
            assert "shell" not in step, step
            assert not SWALLOWS.search(str(step.get("run", ""))), step
    for script in CI.glob("*.sh"):
        text = script.read_text()
        assert "set -euo pipefail" in text and not SWALLOWS.search(text), script


@pytest.mark.parametrize("script", sorted(CI.glob("*.sh")), ids=lambda p: p.name)
def test_ci_scripts_parse_and_are_executable(script: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                          check=False, timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert script.stat().st_mode & 0o111, f"{script.name}: workflows run it directly"


def test_the_swallow_check_catches_the_old_patterns() -> None:
    for text in ("helm plugin install x || true", "cmd || :", "set +e\ncmd"):
        assert SWALLOWS.search(text), text
    assert not SWALLOWS.search("a || exit 1")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_tools_are_installed_pinned_before_pytest(path: Path) -> None:
    runs = _runs(path)
    assert "ci/install-deps.sh" in runs
    assert runs.index("ci/install-deps.sh") < runs.index("pytest suites")
    assert "helmfile/releases/download" not in runs and "helm plugin install" not in runs


def test_install_deps_pins_upstreams_versions() -> None:
    text = (CI / "install-deps.sh").read_text()
    for name, version in UPSTREAM_PINS.items():
        assert f"{name}={version}\n" in text, name
    assert 'helm-diff --version "$HELM_DIFF_VERSION"' in text
    assert "get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz" in text
    assert "releases/download/v${HELMFILE_VERSION}/" in text


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_llm_d_is_checked_out_at_the_guide_versions_commit(path: Path) -> None:
    steps = _steps(path)
    ids = [s.get("id") for s in steps]
    checkouts = [s for s in steps if s.get("with", {}).get("repository") == "llm-d/llm-d"]
    assert checkouts, "the guide comes from llm-d/llm-d"
    for step in checkouts:
        assert step["with"].get("ref") == "${{ steps.llm-d-ref.outputs.sha }}", step
        assert ids.index("llm-d-ref") < steps.index(step)
    assert 'ci/llm-d-ref.sh "$GUIDE_VERSION"' in _runs(path)


@pytest.mark.parametrize("version", available_versions())
def test_every_profile_names_the_llm_d_commit_and_the_script_prints_it(version: str) -> None:
    raw = yaml.safe_load((data_dir("profiles") / f"{version}.yaml").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", str(raw["llm_d_ref"])), raw.get("llm_d_ref")
    out = subprocess.run([str(CI / "llm-d-ref.sh"), version], capture_output=True, text=True,
                         check=True, timeout=10).stdout.strip()
    assert out == raw["llm_d_ref"]


def test_ref_script_refuses_an_unknown_version() -> None:
    proc = subprocess.run([str(CI / "llm-d-ref.sh"), "v9.9"], capture_output=True, text=True,
                          check=False, timeout=10)
    assert proc.returncode == 2 and "no guide profile" in proc.stderr and not proc.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_namespace_and_hf_secret_created_without_the_token_on_a_command_line(
        path: Path) -> None:
    runs = _runs(path)
    assert "create namespace" in runs
    assert "create secret generic" in runs and "llm-d-hf-token" in runs
    assert "--from-literal" not in runs, "argv is visible to every process on the runner"
    assert "--from-file=HF_TOKEN=/dev/stdin" in runs or "--from-env-file" in runs
    assert runs.index("llm-d-hf-token") < runs.index("pytest suites")


def test_kind_installs_the_monitoring_crds_the_precheck_requires() -> None:
    path = CI / "github" / "pr-kind-e2e.yaml"
    runs = _runs(path)
    line = next(x for x in runs.splitlines() if "prometheus-operator" in x)
    folder = repo_root() / line.split("-f ", 1)[1].strip()
    assert folder == crd_dir("prometheus-operator-v0.93.0") / ""
    names = {yaml.safe_load(f.read_text())["metadata"]["name"] for f in folder.glob("*.yaml")}
    version = _load(path)["jobs"]["kind-e2e"]["env"]["GUIDE_VERSION"]
    assert set(load_profile(version, "istio").monitoring_crds) <= names
    assert runs.index("prometheus-operator") < runs.index("pytest suites")
    wait = next(x for x in runs.splitlines() if x.startswith("kubectl wait"))
    assert "--for=condition=Available deployment --all" in wait, "no label guess: all of them"
    assert runs.index(wait) < runs.index("pytest suites")  # gateway control plane up first


def test_the_nightly_runs_the_depth_make_test_cannot_afford() -> None:
    """Issue 12: >= 10,000 fuzz cases and a 10-minute soak, nightly, through ``make nightly``;
    and the current guide's cells beside the helmfile era's in the GPU matrix."""
    data = _load(CI / "github" / "nightly-gpu-conformance.yaml")
    assert "make nightly" in " ".join(s.get("run", "") for s in data["jobs"]["depth"]["steps"])
    makefile = (repo_root() / "Makefile").read_text()
    target = makefile.split("\nnightly:", 1)[1].split("\n\n", 1)[0]
    assert "LAMPLIGHTER_FUZZ_CASES=10000" in target and "LAMPLIGHTER_SOAK_SECONDS=600" in target
    assert "--target kwok" in target
    cells = data["jobs"]["conformance"]["strategy"]["matrix"]["include"]
    assert {c["provider"] for c in cells if c["guide_version"] == "current"} == {
        "standalone", "istio", "agentgateway", "gke"}
    assert all(c["guide_dir"] == "optimized-baseline" for c in cells)

