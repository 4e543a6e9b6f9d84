"""One kwok cluster (control plane, controllers, two kwok nodes) per module, stopped after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.kwok import KwokCluster
from fixtures.kwok.images import STAND_INS
from fixtures.ports import PortAllocator
from fixtures.processes import ProcessSupervisor
from fixtures.tools import command, is_cached
from tests.support.kwok_networks import worker_pod_network

# Images the pod runner tests use besides the real table: one whose readiness a test controls,
# one the runner has no process for.
TEST_IMAGES = ("lamplighter/test-gate", "lamplighter/no-launcher")


@pytest.fixture(scope="module")
def kwok_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokCluster]:
    workdir = tmp_path_factory.mktemp("kwok")
    with ProcessSupervisor(workdir / "logs") as supervisor, PortAllocator() as allocator, \
            KwokCluster(supervisor, allocator, workdir, nodes=2, pod_network=worker_pod_network(),
                        run_images=(*STAND_INS, *TEST_IMAGES)) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The pinned kubectl (the API server's release). Missing beside built kwok tools is a
    failure, not a skip: the cluster path would fall back to whatever kubectl PATH has."""
    if not is_cached("kubectl"):
        pytest.fail("the pinned kubectl is not built: .venv/bin/python -m fixtures.tools build "
                    "kubectl (make tools)")
    return command("kubectl")
