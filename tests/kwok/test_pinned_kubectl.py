"""The pinned kubectl: the API server's release, and it works against a kwok control plane."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fixtures.cluster.kube import RESOURCES, KubeClient
from fixtures.kwok import KwokCluster
from fixtures.tools import TOOLS, command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NS, OTHER_NS = "kubectl-pinned", "kubectl-empty"


def _run(kubectl: str, *args: str) -> str:
    done = subprocess.run([kubectl, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{kubectl} {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_the_pinned_kubectl_reports_the_pinned_kubernetes_release(kubectl: str) -> None:
    client = json.loads(_run(kubectl, "version", "--client", "-o", "json"))["clientVersion"]
    assert client["gitVersion"] == TOOLS["kubectl"].version == TOOLS["kube"].version


def test_the_kubectl_lookup_falls_back_to_path_when_the_cache_has_no_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubectl: str) -> None:
    """Negative control for the lookup the fixture uses: an empty cache gives the bare name."""
    assert kubectl != "kubectl" and Path(kubectl).is_file()
    monkeypatch.setenv("LAMPLIGHTER_TOOLS_CACHE", str(tmp_path))
    assert command("kubectl") == "kubectl"


def test_kubectl_get_pods_lists_the_namespaces_pods_on_a_kwok_control_plane(
        kwok_cluster: KwokCluster, kubectl: str) -> None:
    kube = KubeClient.from_kubeconfig(config_file=str(kwok_cluster.kubeconfig))
    for ns in (NS, OTHER_NS):
        kube.create(RESOURCES["Namespace"], {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": ns}})
    kube.create(RESOURCES["Pod"], {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": "listed"},
                                   "spec": {"containers": [{"name": "main",
                                                            "image": "example.invalid/x:1"}]}},
                NS)
    config = f"--kubeconfig={kwok_cluster.kubeconfig}"
    server = json.loads(_run(kubectl, config, "version", "-o", "json"))["serverVersion"]
    assert server["gitVersion"] == TOOLS["kubectl"].version, "client and API server one release"
    assert _run(kubectl, config, "get", "pods", "-n", NS, "-o", "name").split() == ["pod/listed"]
    # control: another namespace does not show it (the listing is the namespace's, not all)
    assert _run(kubectl, config, "get", "pods", "-n", OTHER_NS, "-o", "name").split() == []
