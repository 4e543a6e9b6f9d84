"""One real control plane (etcd + kube-apiserver from the pinned tool cache) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.controlplane import ControlPlane
from fixtures.ports import PortAllocator
from fixtures.processes import ProcessSupervisor


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("controlplane")
    with ProcessSupervisor(workdir / "logs") as supervisor, PortAllocator() as allocator, \
            ControlPlane(supervisor, allocator, workdir) as plane:
        yield plane

