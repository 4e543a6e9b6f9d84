"""Kubernetes discovery through the real ``kubernetes`` client against an emulated API server,
seeded with the guide's InferencePool (v1 and v1alpha2) and decode pods."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_emulator import KubeEmulator
from kubernetes import client

from scheduler_ref.datastore import Datastore
from scheduler_ref.discovery.kube import KubeDiscovery

GUIDE = Path(__file__).resolve().parents[1] / "data" / "guide" / "v0.3"


def _doc(path: Path, kind: str) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind)


def _pods(ns: str, n: int) -> list[dict[str, Any]]:
    deploy = _doc(GUIDE / "istio" / "ms.yaml", "Deployment")
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    return [{
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"decode-{i}", "namespace": ns, "labels": dict(labels)},
        "status": {"phase": "Running", "podIP": f"10.1.0.{i + 1}",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    } for i in range(n)]


def _wait(ds: Datastore, want: set[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ds.keys() == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"endpoints {ds.keys()} != {want}")


@pytest.mark.parametrize("guide_flavour", ["gke", "istio"])  # gke: v1 pool, istio: v1alpha2 pool
def test_pool_pods_discovered_and_unready_pods_drop(guide_flavour: str) -> None:
    pool = _doc(GUIDE / guide_flavour / "gaie.yaml", "InferencePool")
    ns, name = pool["metadata"]["namespace"], pool["metadata"]["name"]
    group = pool["apiVersion"].split("/")[0]
    with KubeEmulator() as api:
        api.put_pool(pool)
        pods = _pods(ns, 2)
        for p in pods:
            api.put_pod(p)
        api.put_pod({**pods[0], "metadata": {**pods[0]["metadata"], "name": "other",
                                             "labels": {"app": "x"}}})

        async def main() -> None:
            ds = Datastore()
            conf = client.Configuration(host=api.url)
            disc = KubeDiscovery(ds, name, ns, group, api_client=client.ApiClient(conf),
                                 watch_timeout=5)
            disc.start(asyncio.get_running_loop())
            try:
                await asyncio.to_thread(_wait, ds, {"10.1.0.1:8000", "10.1.0.2:8000"})
                e = next(e for e in ds.snapshot() if e.key == "10.1.0.1:8000")
                assert e.name == "decode-0" and e.labels["llm-d.ai/role"] == "decode"
                unready = {**pods[1], "status": {**pods[1]["status"], "conditions": [
                    {"type": "Ready", "status": "False"}]}}
                api.put_pod(unready)
                await asyncio.to_thread(_wait, ds, {"10.1.0.1:8000"})
                api.put_pod(pods[1])
                await asyncio.to_thread(_wait, ds, {"10.1.0.1:8000", "10.1.0.2:8000"})
                api.delete_pod(ns, "decode-0")
                await asyncio.to_thread(_wait, ds, {"10.1.0.2:8000"})
            finally:
                disc.stop()

        asyncio.run(main())


def test_wrong_pool_group_falls_back_to_the_other_api() -> None:
    pool = _doc(GUIDE / "istio" / "gaie.yaml", "InferencePool")  # v1alpha2
    ns, name = pool["metadata"]["namespace"], pool["metadata"]["name"]
    with KubeEmulator() as api:
        api.put_pool(pool)
        for p in _pods(ns, 1):
            api.put_pod(p)

        async def main() -> None:
            ds = Datastore()
            disc = KubeDiscovery(ds, name, ns, "inference.networking.k8s.io",
                                 api_client=client.ApiClient(client.Configuration(host=api.url)))
            disc.start(asyncio.get_running_loop())
            try:
                await asyncio.to_thread(_wait, ds, {"10.1.0.1:8000"})
            finally:
                disc.stop()

        asyncio.run(main())
