"""A kwok cluster is a real control plane: the controller-manager turns a Deployment into pods,
the scheduler binds them to kwok nodes, kwok runs them with loopback IPs from the node's CIDR."""

from __future__ import annotations

import ipaddress
import time
from typing import Any, cast

import pytest
from kubernetes import client

from fixtures.kwok import KwokCluster
from fixtures.kwok.cluster import node_cidrs
from fixtures.kwok.objects import condition, plain

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def _deployment(name: str, replicas: int) -> Any:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "main", "image": "example.invalid/never-pulled:1"}]}}}}


def _running_pods(api: client.CoreV1Api, namespace: str, selector: str, count: int,
                  timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        pods = [p for p in map(plain, api.list_namespaced_pod(
                    namespace, label_selector=selector).items)
                if p["status"].get("phase") == "Running" and p["status"].get("podIP")
                and not p["metadata"].get("deletionTimestamp")]
        if len(pods) == count:
            return pods
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pods)} running pods for {selector}, expected {count}")
        time.sleep(0.2)


def test_control_plane_is_ready_within_thirty_seconds(kwok_cluster: KwokCluster) -> None:
    assert kwok_cluster.ready_seconds is not None
    assert kwok_cluster.ready_seconds <= 30.0


def test_deployment_becomes_running_pods_with_loopback_ips(kwok_cluster: KwokCluster) -> None:
    namespace = "kwok-deploy"
    with kwok_cluster.api_client() as api_client:
        core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
        core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))
        apps.create_namespaced_deployment(namespace, _deployment("web", 2))
        pods = _running_pods(core, namespace, "app=web", 2)

        node_cidr = {n["metadata"]["name"]: ipaddress.IPv4Network(n["spec"]["podCIDR"])
                     for n in map(plain, core.list_node().items)}
        for pod in pods:
            ip = ipaddress.IPv4Address(pod["status"]["podIP"])
            assert ip in LOOPBACK
            assert pod["spec"]["nodeName"] in node_cidr  # bound by the scheduler
            assert ip in node_cidr[pod["spec"]["nodeName"]]
            assert condition(pod, "Ready") == "True"
            # made by the ReplicaSet controller for the Deployment controller's ReplicaSet
            assert [o["kind"] for o in pod["metadata"]["ownerReferences"]] == ["ReplicaSet"]
        assert len({p["status"]["podIP"] for p in pods}) == 2

        deadline = time.monotonic() + 30
        while True:
            status = plain(apps.read_namespaced_deployment_status("web", namespace))["status"]
            if status.get("availableReplicas") == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status.get("availableReplicas") == 2


def test_a_job_completes_through_the_job_controller(kwok_cluster: KwokCluster) -> None:
    with kwok_cluster.api_client() as api_client:
        batch = client.BatchV1Api(api_client)
        batch.create_namespaced_job("default", cast(Any, {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hook"},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "example.invalid/job:1"}]}}}}))
        deadline = time.monotonic() + 60
        while True:
            job = plain(batch.read_namespaced_job_status("hook", "default"))
            if condition(job, "Complete") == "True" or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert condition(job, "Complete") == "True"
        assert job["status"].get("succeeded") == 1


def test_a_pod_for_a_node_that_does_not_exist_never_runs(kwok_cluster: KwokCluster) -> None:
    """Negative control: only kwok's nodes run pods (nothing marks an unbound pod Running)."""
    with kwok_cluster.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespaced_pod("default", cast(Any, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan"},
            "spec": {"nodeName": "no-such-node",
                     "containers": [{"name": "main", "image": "example.invalid/x:1"}]}}))
        time.sleep(3)
        pod = plain(core.read_namespaced_pod("orphan", "default"))
        assert not pod["status"].get("podIP")
        assert pod["status"].get("phase") == "Pending"
        core.delete_namespaced_pod("orphan", "default", grace_period_seconds=0)


def test_node_cidrs_must_stay_inside_loopback() -> None:
    with pytest.raises(ValueError, match=r"not inside 127\.0\.0\.0/8"):
        node_cidrs(1, ipaddress.IPv4Network("10.1.0.0/16"))
    with pytest.raises(ValueError, match="do not fit"):
        node_cidrs(3, ipaddress.IPv4Network("127.5.0.0/23"))
    assert [str(c) for c in node_cidrs(2)] == ["127.1.0.0/24", "127.1.1.0/24"]
