"""Plugin kinds of the EPP scheduling framework, as small base classes.

A plugin may implement several kinds (the prefix scorer is also a PreRequest hook). Every
method receives ``now`` from the caller's clock: plugins never read time themselves.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar

from scheduler_ref.params import Params
from scheduler_ref.types import CycleState, Endpoint, LLMRequest

__all__ = [
    "DataLayerPlugin",
    "EndpointsHook",
    "Filter",
    "Parser",
    "Picker",
    "Plugin",
    "PreRequest",
    "ProfileHandler",
    "ResponseHook",
    "SaturationDetector",
    "Scorer",
]


class Plugin:
    """Base of every plugin: a registered ``type_name`` and a config ``name``."""

    type_name: ClassVar[str] = ""

    def __init__(self, name: str, params: Params) -> None:
        self.name = name


class Filter(Plugin):
    """Keeps a subset of candidates; an empty result fails the profile."""

    def filter(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[Endpoint]:
        raise NotImplementedError


class Scorer(Plugin):
    """Scores candidates in [0, 1] (clamped by the scheduler), aligned with ``endpoints``."""

    def score(
        self, req: LLMRequest, endpoints: list[Endpoint], state: CycleState, now: float
    ) -> list[float]:
        raise NotImplementedError


class Picker(Plugin):
    """Chooses endpoints from (endpoint, weighted total) pairs, best first."""

    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.max_endpoints = params.integer("maxNumOfEndpoints", default=1, minimum=1)

    def pick(
        self, scored: Sequence[tuple[Endpoint, float]], rng: random.Random
    ) -> list[Endpoint]:
        raise NotImplementedError


class PreRequest(Plugin):
    """Runs after the pick, before the request is sent (records state such as the index)."""

    def pre_request(
        self, req: LLMRequest, picked: Endpoint, state: CycleState, now: float
    ) -> None:
        raise NotImplementedError


class ResponseHook(Plugin):
    """Sees the response of a scheduled request: headers to add, and completion."""

    def response_headers(self, req: LLMRequest, endpoint: Endpoint) -> dict[str, str]:
        return {}

    def response_complete(self, req: LLMRequest, endpoint: str, now: float) -> None:
        return None


class EndpointsHook(Plugin):
    """Told when the set of known endpoints changes, so per-endpoint state can be purged."""

    def endpoints_changed(self, keys: set[str]) -> None:
        raise NotImplementedError


class ProfileHandler(Plugin):
    """Chooses which scheduling profiles run; only single-profile is implemented."""


class SaturationDetector(Plugin):
    """Judges whether the pool is saturated (sheddable requests are then refused)."""

    def saturation(self, endpoints: Sequence[Endpoint], now: float) -> float:
        raise NotImplementedError


class Parser(Plugin):
    """Turns a request body into an LLMRequest; the OpenAI parsing lives in request_parse."""


class DataLayerPlugin(Plugin):
    """Configures endpoint discovery or metrics collection (``dataLayer``), never a profile."""
