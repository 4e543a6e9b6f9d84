"""file-discovery: endpoints from a YAML file, optionally re-read when the file is replaced.

File format (llm-d-router's no-Kubernetes deployment)::

    endpoints:
    - name: vllm-0          # required, unique
      namespace: default    # optional
      address: 10.0.0.1     # literal IPv4 (hostnames are not resolved)
      port: "8000"          # a string, as in the guide's file
      metricsHost: 10.0.0.1:9090   # optional: scrape here instead of address:port
      labels: {model: m}    # optional, string -> string

Every error is a :class:`DiscoveryFileError` naming the file, the field and the value. With
``watchFile`` a rewrite (e.g. ``mv tmp endpoints.yaml``) replaces the pool; a bad rewrite keeps
the last good pool and logs one line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from scheduler_ref.types import Endpoint

__all__ = ["DiscoveryFileError", "FileWatcher", "load_endpoints_file", "parse_endpoints_doc"]

log = logging.getLogger("scheduler_ref.discovery")

_FIELDS = {"name", "namespace", "address", "port", "metricsHost", "labels"}


class DiscoveryFileError(Exception):
    """A bad endpoints file; the text is one line: ``file: endpoints[i].field: problem``."""


def _fail(src: str, where: str, message: str) -> DiscoveryFileError:
    return DiscoveryFileError(f"{src}: {where}: {message}" if where else f"{src}: {message}")


def _entry(src: str, i: int, raw: Any) -> Endpoint:
    where = f"endpoints[{i}]"
    if not isinstance(raw, dict):
        raise _fail(src, where, f"must be a mapping, got {raw!r}")
    for key in raw:
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise _fail(src, f"{where}.{key}", f"unknown field (known: {known})")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(src, f"{where}.name", f"is required (a non-empty string), got {name!r}")
    namespace = raw.get("namespace", "default")
    if not isinstance(namespace, str) or not namespace:
        raise _fail(src, f"{where}.namespace", f"must be a non-empty string, got {namespace!r}")
    address = raw.get("address")
    try:
        ip = ipaddress.IPv4Address(address) if isinstance(address, str) else None
    except ValueError:
        ip = None
    if ip is None:
        raise _fail(src, f"{where}.address", f"must be a literal IPv4 address, got {address!r}")
    port = raw.get("port")
    if not isinstance(port, str) or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(src, f"{where}.port", f"must be a port number as a string (e.g. \"8000\"), "
                    f"got {port!r}")
    metrics_host = raw.get("metricsHost", "")
    if not isinstance(metrics_host, str):
        raise _fail(src, f"{where}.metricsHost", f"must be a string host[:port], got "
                    f"{metrics_host!r}")
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise _fail(src, f"{where}.labels", f"must map strings to strings, got {labels!r}")
    return Endpoint(key=f"{ip}:{int(port)}", name=name, namespace=namespace,
                    labels=dict(labels), metrics_host=metrics_host)


def parse_endpoints_doc(data: Any, src: str) -> list[Endpoint]:
    """Validate a decoded endpoints document; an empty list is a valid (empty) pool."""
    if not isinstance(data, dict) or "endpoints" not in data:
        raise _fail(src, "", "must be a mapping with an 'endpoints' list")
    raw = data["endpoints"]
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise _fail(src, "endpoints", f"must be a list, got {raw!r}")
    out: list[Endpoint] = []
    names: set[tuple[str, str]] = set()
    keys: set[str] = set()
    for i, item in enumerate(raw):
        e = _entry(src, i, item)
        if (e.namespace, e.name) in names:
            raise _fail(src, f"endpoints[{i}].name", f"duplicate endpoint {e.namespace}/{e.name}")
        if e.key in keys:
            raise _fail(src, f"endpoints[{i}]", f"duplicate address:port {e.key}")
        names.add((e.namespace, e.name))
        keys.add(e.key)
        out.append(e)
    return out


def load_endpoints_file(path: str | Path) -> list[Endpoint]:
    src = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise _fail(src, "", f"cannot read: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise _fail(src, "", "invalid YAML: " + " ".join(str(e).split())) from None
    return parse_endpoints_doc(data, src)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class FileWatcher:
    """Polls the file's identity (inode, mtime, size) and applies each good new version."""

    def __init__(self, path: str, apply: Callable[[list[Endpoint]], None],
                 interval: float = 0.5) -> None:
        self.path = path
        self.apply = apply
        self.interval = interval
        self._stamp = _stamp(path)
        self._task: asyncio.Task[None] | None = None

    def check(self) -> bool:
        """Reload when the file changed; True when a new pool was applied."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            endpoints = load_endpoints_file(self.path)
        except DiscoveryFileError as e:
            log.error("endpoints file rejected, keeping the last good pool: %s", e)
            return False
        self.apply(endpoints)
        log.info("endpoints file reloaded", extra={"fields": {
            "path": self.path, "endpoints": sorted(e.key for e in endpoints)}})
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
