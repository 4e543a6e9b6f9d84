"""The in-cluster Locust manifests (``loadtests/deploy/``) against a real API server: every
object is admitted (server-side dry run), the results live on a claim that outlives the Job,
and the pieces agree with each other (image, claim, worker count)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cluster import KubeError
from fixtures.cluster.kube import KubeClient, resource_for
from fixtures.kwok import KwokCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DEPLOY = Path(__file__).resolve().parents[2] / "loadtests" / "deploy"


def _objects(*names: str) -> list[dict[str, Any]]:
    return [d for name in names for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _kustomized() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return _objects(*kustomization["resources"])


@pytest.fixture(scope="module")
def kube(kwok_cluster: KwokCluster) -> KubeClient:
    return KubeClient.from_kubeconfig(config_file=str(kwok_cluster.kubeconfig))


def test_every_manifest_is_admitted_by_the_api_server(kube: KubeClient) -> None:
    for obj in [*_kustomized(), *_objects("results-reader.yaml")]:
        admitted = kube.validate(resource_for(obj["apiVersion"], obj["kind"]), obj, "default")
        assert admitted["metadata"]["name"] == obj["metadata"]["name"]


def test_a_malformed_job_is_refused_naming_the_field(kube: KubeClient) -> None:
    """Negative control: the dry run does validate (a wrong type is a 422 naming it)."""
    job = next(o for o in _kustomized() if o["kind"] == "Job")
    job["spec"]["backoffLimit"] = -1
    with pytest.raises(KubeError, match=r"spec.backoffLimit"):
        kube.validate(resource_for("batch/v1", "Job"), job, "default")


def test_results_outlive_the_job_and_the_pieces_agree() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in _kustomized()}
    claim = objects[("PersistentVolumeClaim", "lamplighter-load-results")]
    master = objects[("Job", "lamplighter-master")]["spec"]["template"]["spec"]
    out = next(v for v in master["volumes"] if v["name"] == "out")
    assert out["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "emptyDir" not in out
    reader = _objects("results-reader.yaml")[0]["spec"]
    assert reader["volumes"][0]["persistentVolumeClaim"]["claimName"] == \
        claim["metadata"]["name"]
    workers = objects[("Deployment", "lamplighter-worker")]["spec"]
    args = master["containers"][0]["args"]
    assert f"--expect-workers={workers['replicas']}" in args
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    image = kustomization["images"][0]["name"]
    assert master["containers"][0]["image"] == image
    assert workers["template"]["spec"]["containers"][0]["image"] == image


def test_the_image_is_built_from_this_repository() -> None:
    """No published image exists: the Dockerfile installs the repository and ships the
    locustfile where the manifests run it."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for package in ("simulator", "scheduler_ref", "fixtures", "loadtests"):
        assert f"COPY {package} {package}" in dockerfile
    assert "pip install --no-cache-dir ." in dockerfile and "WORKDIR /app" in dockerfile
    master = next(o for o in _kustomized() if o["kind"] == "Job")
    command = master["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-1] == "/app/loadtests/locustfile.py"
    assert (DEPLOY.parent / "locustfile.py").is_file()
