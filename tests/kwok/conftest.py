"""One kwok cluster (control plane, controllers, two kwok nodes) per module, stopped after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.kwok import KwokCluster
from fixtures.ports import PortAllocator
from fixtures.processes import ProcessSupervisor


@pytest.fixture(scope="module")
def kwok_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokCluster]:
    workdir = tmp_path_factory.mktemp("kwok")
    with ProcessSupervisor(workdir / "logs") as supervisor, PortAllocator() as allocator, \
            KwokCluster(supervisor, allocator, workdir, nodes=2) as cluster:
        yield cluster
