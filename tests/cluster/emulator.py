"""A small emulated Kubernetes API over HTTP, for the real ``kubernetes`` client in tests.

Serves GET/LIST (equality label selectors, all-namespace lists)/POST/PUT/DELETE, merge PATCH,
JSON PATCH (RFC 6902 add/replace/remove/test) and metadata-only GET (``Accept:
...;as=PartialObjectMetadata``) for any ``/api/v1`` or ``/apis/<group>/<version>`` resource,
plus pod logs. Objects are plain dicts keyed by (group, plural, namespace, name); versions
are not told apart.
Not served: watch, strategic-merge patch, field selectors, admission.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

__all__ = ["CLUSTER_SCOPED", "Emulator", "plural_of", "running_emulator"]

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name
CLUSTER_SCOPED = {"namespaces", "clusterroles", "clusterrolebindings",
                  "customresourcedefinitions"}


def plural_of(kind: str) -> str:
    low = kind.lower()
    if low.endswith("y") and low[-2:-1] not in ("a", "e", "o", "u"):
        return low[:-1] + "ies"
    return low if low.endswith("s") else low + "s"


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return patch
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


class PatchFailed(Exception):
    """A JSON patch op that does not apply (the API server answers 422)."""


def _json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 add/replace/remove/test on a copy of ``doc``."""
    if not isinstance(ops, list):
        raise PatchFailed("a JSON patch is a list of ops")
    doc = json.loads(json.dumps(doc))
    for op in ops:
        *parents, last = [t.replace("~1", "/").replace("~0", "~")
                          for t in op["path"].split("/")[1:]]
        node = doc
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node.get(token)
            if node is None:
                raise PatchFailed(f"{op['path']}: parent missing")
        kind = op["op"]
        if kind == "test":
            current = node[int(last)] if isinstance(node, list) else node.get(last)
            if current != op["value"]:
                raise PatchFailed(f"test {op['path']}: {current!r} != {op['value']!r}")
        elif isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if kind == "add":
                node.insert(index, op["value"])
            elif kind == "replace":
                node[index] = op["value"]
            elif kind == "remove":
                del node[index]
            else:
                raise PatchFailed(f"op {kind!r} not served")
        elif kind in ("add", "replace"):
            if kind == "replace" and last not in node:
                raise PatchFailed(f"replace {op['path']}: missing")
            node[last] = op["value"]
        elif kind == "remove":
            if last not in node:
                raise PatchFailed(f"remove {op['path']}: missing")
            node.pop(last)
        else:
            raise PatchFailed(f"op {kind!r} not served")
    return doc


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Emulator:
    """The store plus the HTTP server; thread-safe."""

    def __init__(self) -> None:
        self.objects: dict[Key, Obj] = {}
        self.logs: dict[tuple[str, str, str, bool], str] = {}
        self.requests: list[tuple[str, str]] = []
        self.secret_data_reads: list[str] = []  # full GETs of a Secret (data included)
        self.controllers: list[Callable[[Obj], None]] = []  # fill in status, like controllers
        self._lock = threading.Lock()
        self._version = 0
        self.server: ThreadingHTTPServer | None = None

    # -- store -----------------------------------------------------------------------
    @staticmethod
    def key_of(obj: Obj) -> Key:
        group = obj.get("apiVersion", "v1").rpartition("/")[0]
        plural = plural_of(obj["kind"])
        ns = "" if plural in CLUSTER_SCOPED else obj["metadata"].get("namespace", "default")
        return group, plural, ns, obj["metadata"]["name"]

    def put(self, obj: Obj) -> Obj:
        with self._lock:
            self._version += 1
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta.setdefault("generation", 1)
            meta["resourceVersion"] = str(self._version)
            for controller in self.controllers:
                controller(obj)
            key = self.key_of(obj)
            if key[2]:
                meta["namespace"] = key[2]
            self.objects[key] = obj
            return obj

    def find(self, kind: str, name: str, namespace: str = "") -> Obj | None:
        plural = plural_of(kind)
        for (_, p, ns, n), obj in self.objects.items():
            if p == plural and n == name and (not namespace or ns == namespace):
                return obj
        return None

    def of_kind(self, kind: str, namespace: str | None = None) -> list[Obj]:
        plural = plural_of(kind)
        return [o for (_, p, ns, _), o in self.objects.items()
                if p == plural and (namespace is None or ns == namespace)]

    def remove(self, obj: Obj) -> None:
        with self._lock:
            self.objects.pop(self.key_of(obj), None)

    def seed_yaml(self, path: Path) -> None:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                self.put(doc)

    # -- HTTP ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path, context: str = "emulated") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "emulated"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> None:
        emulator = self

        class Handler(_Handler):
            store = emulator

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _parse(path: str) -> tuple[str, str, str, str, str]:
    """URL path → (group, plural, namespace, name, subresource)."""
    parts = [p for p in path.split("/") if p]
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    ns = ""
    if rest and rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    rest += [""] * (3 - len(rest))
    return group, rest[0], ns, rest[1], rest[2]


class _Handler(BaseHTTPRequestHandler):
    store: Emulator

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": reason, "message": message, "code": code})

    def _raw_body(self) -> Any:
        length = int(self.headers.get("Content-Length", 0))
        return json.loads(self.rfile.read(length) or b"{}")

    def _body(self) -> Obj:
        data = self._raw_body()
        return data if isinstance(data, dict) else {}

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.store.requests.append((method, self.path))
        try:
            group, plural, ns, name, sub = _parse(url.path)
        except (IndexError, ValueError):
            self._status(404, "NotFound", url.path)
            return
        store = self.store
        key = (group, plural, ns, name)
        if plural == "namespaces" and name and not ns:
            key = ("", "namespaces", "", name)
        if method == "GET" and sub == "log":
            container = query.get("container", "")
            previous = query.get("previous") == "true"
            text = store.logs.get((ns, name, container, previous),
                                  f"log of {ns}/{name} container {container}\n")
            self._send(200, text, "text/plain")
            return
        if method == "GET" and not name:
            self._list(group, plural, ns, query.get("labelSelector", ""))
            return
        obj = store.objects.get(key)
        metadata_only = "as=PartialObjectMetadata" in self.headers.get("Accept", "")
        if method == "GET" and obj and metadata_only:
            self._send(200, {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]})
        elif method == "GET":
            if obj and plural == "secrets":
                store.secret_data_reads.append(self.path)
            self._send(200, obj) if obj else self._status(404, "NotFound", f"{plural} {name}")
        elif method == "POST":
            body = self._body()
            body.setdefault("metadata", {})
            if ns:
                if ("", "namespaces", "", ns) not in store.objects:
                    self._status(404, "NotFound", f'namespaces "{ns}" not found')
                    return
                body["metadata"]["namespace"] = ns
            new_key = (group, plural, ns, body["metadata"].get("name", ""))
            if new_key in store.objects:
                self._status(409, "AlreadyExists", f"{plural} {new_key[3]} already exists")
                return
            self._send(201, store.put(body))
        elif obj is None:
            self._status(404, "NotFound", f"{plural} {name}")
        elif method == "PUT":
            body = self._body()
            body.setdefault("status", obj.get("status"))
            body["metadata"]["creationTimestamp"] = obj["metadata"]["creationTimestamp"]
            self._send(200, store.put(body))
        elif (method == "PATCH"
              and self.headers.get("Content-Type") == "application/json-patch+json"):
            try:
                patched = _json_patch(obj, self._raw_body())
            except (PatchFailed, KeyError, IndexError, ValueError, TypeError) as e:
                self._status(422, "Invalid", str(e))
                return
            self._send(200, store.put(patched))
        elif method == "PATCH":
            self._send(200, store.put(_merge(obj, self._body())))
        elif method == "DELETE":
            store.remove(obj)
            if plural == "namespaces":
                for other in [o for k, o in store.objects.items() if k[2] == name]:
                    store.remove(other)
            self._send(200, {"kind": "Status", "status": "Success"})

    def _list(self, group: str, plural: str, ns: str, selector: str) -> None:
        wanted = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
        items = [o for (g, p, n, _), o in sorted(self.store.objects.items())
                 if g == group and p == plural and (not ns or n == ns)
                 and all((o["metadata"].get("labels") or {}).get(k) == v
                         for k, v in wanted.items())]
        self._send(200, {"kind": "List", "apiVersion": "v1", "items": items,
                         "metadata": {"resourceVersion": str(self.store._version)}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


@contextmanager
def running_emulator() -> Iterator[Emulator]:
    emulator = Emulator()
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
