"""The upstream GAIE EPP on the kwok target, on the guide's objects and on the harness's own.

Each test stands up a kwok cluster of its own, on its xdist worker's pod network. GAIE's EPP
binds its ports on every interface, so the chart's EPP runs on ports of the worker's own
(``worker_epp_port_shift``; the pod's Envoy and readiness probe follow) and the file runs
beside the other workers' clusters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.options import HarnessOptions
from fixtures.targets.kwok import KwokTarget
from fixtures.tools import TOOLS
from tests.support.kwok_networks import worker_epp_port_shift, worker_pod_network
from tests.support.served_by import served_by

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_upstream_epp_finds_the_decode_pods_through_the_api_server(
        tmp_path: Path) -> None:
    """The harness's own objects (a helmfile-era guide version): the upstream EPP beside the
    harness's gateway."""
    target = KwokTarget(HarnessOptions(target="kwok", scheduler="llm-d", pods=2,
                                       guide_version="v0.3", namespace="kwok-llm-d"), tmp_path,
                        pod_network=worker_pod_network())
    try:
        stack = target.up()
        assert stack.scheduler == "llm-d"
        assert stack.extras["epp_version"] == TOOLS["epp"].version
        assert stack.extras["api_server_version"] == TOOLS["kube"].version
        assert set(served_by(stack, 12, "upstream")) == {p.name for p in stack.pods}
    finally:
        target.down()


def test_the_upstream_epp_runs_the_charts_epp_container_as_its_service_account(
        tmp_path: Path) -> None:
    """``--scheduler llm-d`` on the guide's objects: GAIE's EPP in the chart's pod, reading the
    router's config minus what GAIE lacks (each change a note), the chart's Envoy in front."""
    target = KwokTarget(HarnessOptions(target="kwok", scheduler="llm-d", pods=2,
                                       guide_version="current"), tmp_path,
                        pod_network=worker_pod_network(), epp_port_shift=worker_epp_port_shift())
    try:
        stack = target.up()
        assert stack.scheduler == "llm-d"
        notes = next(iter(stack.extras["pod_runner_notes"].values()))
        assert any("no-hit-lru-scorer dropped" in n for n in notes)
        moved = 9002 + worker_epp_port_shift()
        assert stack.extras["epp_address"].endswith(f":{moved}"), stack.extras["epp_address"]
        assert any(":9002 -> " in n and n.endswith(f":{moved}") for n in notes), notes
        assert set(served_by(stack, 12, "upstream")) == {p.name for p in stack.pods}
    finally:
        target.down()
