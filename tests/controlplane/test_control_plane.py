"""The local control plane is a real API server: it answers /version and serves CRDs."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from fixtures.controlplane import ControlPlane, install_crds
from fixtures.controlplane.crds import CrdError
from fixtures.tools import TOOLS

CRDS = Path(__file__).resolve().parents[1] / "data" / "crds"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_api_server_answers_version_as_the_pinned_release(control_plane: ControlPlane) -> None:
    assert control_plane.version == TOOLS["kube"].version
    assert control_plane.ready_seconds is not None
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    with api:
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items
                 if n.metadata]
    assert "default" in names


def test_gaie_crds_install_and_become_established(control_plane: ControlPlane) -> None:
    files = sorted((CRDS / "gaie-v1.5.0").glob("*.yaml"))
    names = install_crds(control_plane.kubeconfig, files)
    assert "inferencepools.inference.networking.k8s.io" in names
    assert len(names) == len(files)


def test_a_file_that_is_not_a_crd_is_refused_by_name(control_plane: ControlPlane,
                                                     tmp_path: Path) -> None:
    bogus = tmp_path / "pod.yaml"
    bogus.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    with pytest.raises(CrdError, match=r"pod\.yaml: kind is 'Pod'"):
        install_crds(control_plane.kubeconfig, [bogus])
