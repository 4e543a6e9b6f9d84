"""The upstream GAIE EPP on the kwok target, on the guide's objects and on the harness's own.

Each test stands up a kwok cluster of its own, apart from ``test_kwok_target.py``'s
module-wide one. GAIE's EPP binds its chart ports (9002, 9003, 9090) on every interface, so
no other kwok cluster may run beside it: ``make test`` runs this file alone, after the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.options import HarnessOptions
from fixtures.targets.kwok import KwokTarget
from fixtures.tools import TOOLS
from tests.support.served_by import served_by

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_upstream_epp_finds_the_decode_pods_through_the_api_server(
        tmp_path: Path) -> None:
    """The harness's own objects (a helmfile-era guide version): the upstream EPP beside the
    harness's gateway."""
    target = KwokTarget(HarnessOptions(target="kwok", scheduler="llm-d", pods=2,
                                       guide_version="v0.3", namespace="kwok-llm-d"), tmp_path)
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
                                       guide_version="current"), tmp_path)
    try:
        stack = target.up()
        assert stack.scheduler == "llm-d"
        notes = next(iter(stack.extras["pod_runner_notes"].values()))
        assert any("no-hit-lru-scorer dropped" in n for n in notes)
        assert set(served_by(stack, 12, "upstream")) == {p.name for p in stack.pods}
    finally:
        target.down()
