"""Server fixtures for load-test tests (helpers in ``load_helpers``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from load_helpers import SSE_SERVER, Server, free_port, serve, simulator_available


@pytest.fixture(scope="module")
def sse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The test SSE server with 20 ms TTFT and 2 ms ITL."""
    port = free_port()
    log = tmp_path_factory.mktemp("sse") / "server.log"
    cmd = [sys.executable, str(SSE_SERVER), "--port", str(port), "--ttft-ms", "20", "--itl-ms", "2"]
    with serve(cmd, port, log) as server:
        yield server


@pytest.fixture(scope="module")
def real_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The project's simulator (``python -m simulator``), 10x time-scaled for speed."""
    if not simulator_available():
        pytest.skip("simulator/ not available in this tree")
    port = free_port()
    log = tmp_path_factory.mktemp("sim") / "simulator.log"
    cmd = [
        sys.executable,
        "-m",
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--pod-name",
        "sim-0",
        "--model",
        "sim-model",
        "--time-scale",
        "0.1",
    ]
    with serve(cmd, port, log) as server:
        yield server
