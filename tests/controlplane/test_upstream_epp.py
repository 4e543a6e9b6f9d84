"""The upstream GAIE EPP runs against the local API server and routes to real simulators;
API-server changes (an unready or deleted pod) change what it picks."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from fixtures.controlplane import ControlPlane, install_crds
from fixtures.plugin import Evidence
from fixtures.ports import PortAllocator
from fixtures.processes import ProcessSupervisor, http_ready
from fixtures.serving import REPO_ROOT, repo_env
from fixtures.tools import TOOLS
from fixtures.upstream_epp import EndpointPod, UpstreamEpp, open_channel
from tests.support.extproc_sequences import Step, collect, drive, envoy_order
from tests.support.fuzz_totals import record_fuzz_totals

CONFIG = Path(__file__).resolve().parent / "data" / "epp-config.yaml"
POOL_CRD = (Path(__file__).resolve().parents[1] / "data" / "crds" / "gaie-v1.5.0"
            / "inference.networking.k8s.io_inferencepools.yaml")
PICKS = 16
FUZZ_CASES = int(os.environ.get("LAMPLIGHTER_FUZZ_CASES", "1000"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@contextmanager
def epp_with_simulators(control_plane: ControlPlane, workdir: Path, namespace: str,
                        ips: list[str], secure: bool) -> Iterator[UpstreamEpp]:
    """Simulators on their own loopback IPs and one common port, and an EPP that sees them."""
    install_crds(control_plane.kubeconfig, [POOL_CRD])
    with ProcessSupervisor(workdir / "logs") as supervisor, PortAllocator() as allocator:
        port = allocator.reserve()
        pods = [EndpointPod(f"sim-{i}", ip, port) for i, ip in enumerate(ips)]
        for pod in pods:
            process = supervisor.start(pod.name, [
                sys.executable, "-m", "simulator", "--host", pod.ip, "--port", str(port),
                "--pod-name", pod.name, "--namespace", namespace, "--model", "sim-model"],
                env=repo_env(), cwd=REPO_ROOT)
            process.wait_ready(http_ready(f"http://{pod.ip}:{port}/health"), 30)
        with UpstreamEpp.start(supervisor, allocator, workdir / "epp", control_plane.kubeconfig,
                               pods, CONFIG, secure=secure, namespace=namespace) as epp:
            yield epp


def _picks(epp: UpstreamEpp, tag: str) -> list[str]:
    # distinct prompts: no prefix-cache affinity, so ties spread over every ready pod
    return [epp.pick({"model": "sim-model", "prompt": f"{tag} request {i} " * 20,
                      "max_tokens": 4}) for i in range(PICKS)]


def test_unready_pod_is_no_longer_picked(control_plane: ControlPlane, tmp_path: Path) -> None:
    ips = ["127.0.1.11", "127.0.1.12"]
    with epp_with_simulators(control_plane, tmp_path, "epp-unready", ips, secure=False) as epp:
        assert epp.version == TOOLS["epp"].version
        port = epp.pods[0].port
        before = set(_picks(epp, "before"))
        # negative control: both pods receive traffic while both are ready
        assert before == {f"{ip}:{port}" for ip in ips}

        epp.set_ready("sim-0", False)
        epp.wait_ready_pods(1)
        assert set(_picks(epp, "after")) == {f"{ips[1]}:{port}"}


def test_deleted_pod_stops_receiving_traffic_over_tls(control_plane: ControlPlane,
                                                      tmp_path: Path) -> None:
    ips = ["127.0.1.21", "127.0.1.22"]
    with epp_with_simulators(control_plane, tmp_path, "epp-deleted", ips, secure=True) as epp:
        port = epp.pods[0].port
        assert set(_picks(epp, "before")) == {f"{ip}:{port}" for ip in ips}

        epp.delete_pod("sim-1")
        epp.wait_ready_pods(1)
        assert set(_picks(epp, "after")) == {f"{ips[0]}:{port}"}


def _upstream_verdict(seq: list[Step], out: list[Any], code: grpc.StatusCode,
                      details: str) -> str:
    """What the upstream EPP must do with any sequence: end the stream (no hang: ``drive``)
    and never answer with a malformed message. Its error statuses are its own (Go handlers
    end a stream with UNKNOWN or INTERNAL and a message), so they are tallied, not judged;
    an Envoy-valid sequence it refuses is tallied apart, as a finding about the EPP."""
    kinds = [r.WhichOneof("response") for r in out]
    assert None not in kinds, (seq, kinds)
    if code == grpc.StatusCode.OK:
        return "answered"
    return "refused valid" if envoy_order(seq)[0] else f"refused {code.name}"


def test_generated_message_sequences_neither_hang_nor_kill_the_upstream_epp(
        control_plane: ControlPlane, tmp_path: Path, evidence: Evidence) -> None:
    samples = collect(FUZZ_CASES)
    with epp_with_simulators(control_plane, tmp_path, "epp-fuzz", ["127.0.1.31"],
                             secure=False) as epp:
        with open_channel(epp.grpc_address, None) as channel:
            tally = drive(channel, samples, _upstream_verdict)
        record_fuzz_totals(evidence, "upstream_epp_ext_proc", dict(tally))
        assert epp.process.alive, "the EPP died under fuzzed ext_proc streams"
        assert epp.serving()
        # still routes an ordinary request afterwards
        assert _picks(epp, "after-fuzz")[0] == f"127.0.1.31:{epp.pods[0].port}"
    assert sum(v for k, v in tally.items() if k != "valid") == len(samples)
    assert tally["valid"] > FUZZ_CASES // 5, tally  # the generator reaches real Envoy orders
