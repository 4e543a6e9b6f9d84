"""The endpoint datastore: who is in the pool (from discovery) and their latest metrics.

Discovery replaces the membership; the scraper updates metrics. The scheduler only ever sees
immutable :class:`Endpoint` snapshots, rebuilt lazily after a change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from scheduler_ref.types import Endpoint

__all__ = ["Datastore"]

Listener = Callable[[set[str]], None]


class Datastore:
    """Endpoint membership plus last metrics per endpoint (single event-loop thread)."""

    def __init__(self) -> None:
        self._members: dict[str, Endpoint] = {}
        self._metrics: dict[str, dict[str, Any]] = {}
        self._snapshot: list[Endpoint] | None = None
        self._listeners: list[Listener] = []
        self.synced = False  # discovery delivered at least one complete membership
        self.scraped_once = False  # at least one endpoint answered a scrape

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(keys)`` whenever the set of endpoint keys changes."""
        self._listeners.append(listener)

    def set_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        """Replace the membership (metrics of endpoints that stay are kept)."""
        members = {e.key: e for e in endpoints}
        changed = members.keys() != self._members.keys()
        self._members = members
        for key in [k for k in self._metrics if k not in members]:
            del self._metrics[key]
        self._snapshot = None
        self.synced = True
        if changed:
            keys = set(members)
            for listener in self._listeners:
                listener(keys)

    def update_metrics(self, key: str, fields: dict[str, Any]) -> None:
        """Store a successful scrape (``fields`` are Endpoint fields incl. ``metrics_time``)."""
        if key not in self._members:
            return
        self._metrics[key] = fields
        self.scraped_once = True
        self._snapshot = None

    def member(self, key: str) -> Endpoint | None:
        """The endpoint as discovery described it (no metrics)."""
        return self._members.get(key)

    def keys(self) -> set[str]:
        return set(self._members)

    def snapshot(self) -> list[Endpoint]:
        if self._snapshot is None:
            self._snapshot = [
                dataclasses.replace(e, **self._metrics[k]) if k in self._metrics else e
                for k, e in self._members.items()
            ]
        return self._snapshot
