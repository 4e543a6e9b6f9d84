"""Kubernetes discovery: an InferencePool's selector + a pod watch -> datastore endpoints.

Uses the official ``kubernetes`` client (blocking) in a daemon thread and hands each new
membership to the event loop. Pools: ``inference.networking.k8s.io/v1`` (selector.matchLabels,
targetPorts[].number) and ``inference.networking.x-k8s.io/v1alpha2`` (selector map,
targetPortNumber). Endpoints are Ready pods with an IP, one per target port. The pool is
re-read at each watch restart, so selector changes land within ``watch_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from scheduler_ref.datastore import Datastore
from scheduler_ref.types import Endpoint

__all__ = ["KubeDiscovery", "PoolSpec", "pod_endpoints", "pool_spec"]

log = logging.getLogger("scheduler_ref.discovery")

VERSIONS = {"inference.networking.k8s.io": "v1", "inference.networking.x-k8s.io": "v1alpha2"}


@dataclass(frozen=True)
class PoolSpec:
    selector: dict[str, str]
    ports: tuple[int, ...]

    def label_selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()))


def pool_spec(obj: dict[str, Any]) -> PoolSpec:
    """Selector and target ports of a v1 or v1alpha2 InferencePool object."""
    spec = obj.get("spec") or {}
    sel = spec.get("selector") or {}
    labels = sel.get("matchLabels") if isinstance(sel.get("matchLabels"), dict) else sel
    selector = {str(k): str(v) for k, v in (labels or {}).items()}
    if "targetPorts" in spec:
        ports = tuple(int(p["number"]) for p in spec.get("targetPorts") or [])
    else:
        ports = (int(spec.get("targetPortNumber", 8000)),)
    if not selector:
        raise ValueError("InferencePool has an empty selector")
    return PoolSpec(selector, ports)


def _ready(pod: Any) -> bool:
    status = pod.status
    if status is None or not status.pod_ip or pod.metadata.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def pod_endpoints(pods: dict[Any, Any], ports: tuple[int, ...]) -> list[Endpoint]:
    out = []
    for name in sorted(pods):
        pod = pods[name]
        if not _ready(pod):
            continue
        for port in ports:
            out.append(Endpoint(key=f"{pod.status.pod_ip}:{port}", name=name,
                                namespace=pod.metadata.namespace or "",
                                labels=dict(pod.metadata.labels or {})))
    return out


class KubeDiscovery:
    """List + watch the pool's pods in a thread; push endpoint sets into the datastore."""

    def __init__(
        self,
        datastore: Datastore,
        pool_name: str,
        namespace: str,
        group: str = "inference.networking.k8s.io",
        kubeconfig: str | None = None,
        api_client: client.ApiClient | None = None,
        watch_timeout: int = 10,
    ) -> None:
        self.datastore = datastore
        self.pool_name = pool_name
        self.namespace = namespace
        self.group = group
        self.kubeconfig = kubeconfig
        self.api_client = api_client
        self.watch_timeout = watch_timeout
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> client.ApiClient:
        if self.api_client is not None:
            return self.api_client
        if self.kubeconfig:
            return config.new_client_from_config(self.kubeconfig)
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return client.ApiClient()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="kube-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _publish(self, endpoints: list[Endpoint]) -> None:
        assert self._loop is not None
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.datastore.set_endpoints, endpoints)

    def _get_pool(self, api: client.ApiClient) -> PoolSpec:
        custom = client.CustomObjectsApi(api)
        groups = [self.group] + [g for g in VERSIONS if g != self.group]
        last: ApiException | None = None
        for group in groups:
            try:
                obj = custom.get_namespaced_custom_object(
                    group, VERSIONS.get(group, "v1"), self.namespace, "inferencepools",
                    self.pool_name)
            except ApiException as e:
                if e.status != 404:
                    raise
                last = e
                continue
            if not isinstance(obj, dict):
                raise ValueError(f"unexpected InferencePool payload: {obj!r}")
            return pool_spec(obj)
        raise last or RuntimeError("InferencePool not found")

    def _run(self) -> None:
        api = self._client()
        core = client.CoreV1Api(api)
        while not self._stop.is_set():
            try:
                self._cycle(api, core)
            except Exception as e:  # keep discovering through API hiccups
                if self._stop.is_set():
                    break
                log.warning("kubernetes discovery error, retrying: %s", e)
                self._stop.wait(1.0)

    def _cycle(self, api: client.ApiClient, core: client.CoreV1Api) -> None:
        pool = self._get_pool(api)
        listing = core.list_namespaced_pod(self.namespace, label_selector=pool.label_selector())
        pods: dict[Any, Any] = {p.metadata.name if p.metadata else "": p for p in listing.items}
        self._publish(pod_endpoints(pods, pool.ports))
        rv = listing.metadata.resource_version if listing.metadata else None
        self._watch = w = watch.Watch()
        started = time.monotonic()
        for event in w.stream(core.list_namespaced_pod, self.namespace,
                              label_selector=pool.label_selector(), resource_version=rv,
                              timeout_seconds=self.watch_timeout):
            if self._stop.is_set():
                break
            pod = event["object"]
            if event["type"] == "DELETED":
                pods.pop(pod.metadata.name, None)
            elif event["type"] in ("ADDED", "MODIFIED"):
                pods[pod.metadata.name] = pod
            else:
                continue
            self._publish(pod_endpoints(pods, pool.ports))
        if time.monotonic() - started < 0.5 and not self._stop.is_set():
            self._stop.wait(0.5)  # do not spin if the server ends watches at once
