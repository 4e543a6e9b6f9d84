"""Static discovery from ``--endpoints ip:port,...`` (the local stack: no Kubernetes)."""

from __future__ import annotations

from scheduler_ref.types import Endpoint

__all__ = ["parse_endpoints"]


def parse_endpoints(text: str) -> list[Endpoint]:
    """Parse ``host:port,host:port``; ValueError names the bad entry."""
    out: list[Endpoint] = []
    seen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad endpoint {item!r}: want host:port")
        key = f"{host}:{int(port)}"
        if key not in seen:
            seen.add(key)
            out.append(Endpoint(key=key, name=key, namespace="default"))
    if not out:
        raise ValueError("no endpoints given")
    return out
