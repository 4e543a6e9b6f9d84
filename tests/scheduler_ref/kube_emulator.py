"""A tiny Kubernetes API emulator over real HTTP: list + watch of pods and InferencePools.

Enough of the API for the ``kubernetes`` client's list_namespaced_pod (with labelSelector and
watch=true streaming) and get_namespaced_custom_object. Runs its own loop in a thread; tests
mutate objects with the thread-safe ``put_pod`` / ``delete_pod`` / ``put_pool``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from typing import Any

from aiohttp import web

from fixtures.threaded_app import ThreadedApp


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


class KubeEmulator(ThreadedApp):
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.pools: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.rv = 1
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self._changed: asyncio.Event | None = None
        super().__init__(self._app)

    # -- mutation (thread-safe) -------------------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> None:
        done = threading.Event()

        async def go() -> None:
            fn(*args)
            assert self._changed is not None
            self._changed.set()  # wake every watcher; each re-arms with a fresh event
            self._changed = asyncio.Event()
            done.set()

        asyncio.run_coroutine_threadsafe(go(), self.loop)
        done.wait(5)

    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)

    def _put_pod(self, pod: dict[str, Any]) -> None:
        pod = copy.deepcopy(pod)
        md = pod["metadata"]
        key = (md["namespace"], md["name"])
        kind = "MODIFIED" if key in self.pods else "ADDED"
        self._bump(pod)
        self.pods[key] = pod
        self.events.append((self.rv, kind, pod))

    def _delete_pod(self, ns: str, name: str) -> None:
        pod = self.pods.pop((ns, name))
        self._bump(pod)
        self.events.append((self.rv, "DELETED", pod))

    def put_pod(self, pod: dict[str, Any]) -> None:
        self._call(self._put_pod, pod)

    def delete_pod(self, ns: str, name: str) -> None:
        self._call(self._delete_pod, ns, name)

    def put_pool(self, pool: dict[str, Any]) -> None:
        group, version = pool["apiVersion"].split("/")
        md = pool["metadata"]
        self._call(self.pools.__setitem__, (group, version, md["namespace"], md["name"]), pool)

    # -- HTTP -------------------------------------------------------------------------------

    async def _get_pool(self, req: web.Request) -> web.Response:
        m = req.match_info
        pool = self.pools.get((m["group"], m["version"], m["ns"], m["name"]))
        if pool is None:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "NotFound", "code": 404}, status=404)
        return web.json_response(pool)

    async def _pods(self, req: web.Request) -> web.StreamResponse:
        ns = req.match_info["ns"]
        sel = req.query.get("labelSelector", "")
        if req.query.get("watch") not in ("true", "1", "True"):
            items = [p for (pns, _), p in self.pods.items()
                     if pns == ns and _matches(p["metadata"].get("labels", {}), sel)]
            return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                      "metadata": {"resourceVersion": str(self.rv)},
                                      "items": items})
        since = int(req.query.get("resourceVersion") or 0)
        timeout = float(req.query.get("timeoutSeconds") or 30)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for rv, kind, obj in list(self.events):
                md = obj["metadata"]
                if rv > since and md["namespace"] == ns and _matches(md.get("labels", {}), sel):
                    await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                since = max(since, rv)
            if self.events and self.events[-1][0] > since:
                continue  # something arrived while we were writing
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            assert self._changed is not None
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        await resp.write_eof()
        return resp

    def _app(self) -> web.Application:
        self._changed = asyncio.Event()
        app = web.Application()
        app.router.add_get("/apis/{group}/{version}/namespaces/{ns}/inferencepools/{name}",
                           self._get_pool)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._pods)
        return app

