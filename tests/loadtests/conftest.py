"""Server fixtures for load-test tests (helpers in ``tests.support.load_servers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.localstack import SimulatorParams, running_simulator
from fixtures.serving import serving
from tests.support.load_servers import Server, simulator_available, sse_server_argv


@pytest.fixture(scope="module")
def sse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The test SSE server with 20 ms TTFT and 2 ms ITL."""
    argv = sse_server_argv("--ttft-ms", "20", "--itl-ms", "2")
    with serving("sse-server", argv, tmp_path_factory.mktemp("sse")) as server:
        yield server


@pytest.fixture(scope="module")
def real_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The project's simulator (``python -m simulator``), 10x time-scaled for speed."""
    if not simulator_available():
        pytest.skip("simulator/ not available in this tree")
    params = SimulatorParams(time_scale=0.1, num_gpu_blocks=4096)
    with running_simulator(tmp_path_factory.mktemp("sim"), params) as server:
        yield server
