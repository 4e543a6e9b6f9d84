"""Fault switches for the reliability suites: injected errors, readiness, hang.

- ``--failure-rate`` / ``--failure-types``: each generation request fails with that
  probability, with a type drawn uniformly (see ``config.FAILURE_TYPES``).
- Request header ``x-sim-force-error: <status or type>`` (e.g. ``429``, ``503``,
  ``rate_limit``) makes that one request fail.
- ``ready`` False makes /health answer 503; ``hang`` True holds new generation requests
  until it is switched off or the client disconnects.
"""

from __future__ import annotations

import asyncio
import random

from simulator.config import FAILURE_TYPES, FaultConfig
from simulator.protocol import ApiError

__all__ = ["FORCE_ERROR_HEADER", "Faults"]

FORCE_ERROR_HEADER = "x-sim-force-error"
_BY_STATUS = {"400": "invalid_request", "404": "model_not_found", "429": "rate_limit",
              "500": "server_error", "503": "unavailable"}


def _error(kind: str) -> ApiError:
    status, err_type, message = FAILURE_TYPES[kind]
    return ApiError(status, message, None, err_type)


class Faults:
    """Mutable fault state of one server (changed through /admin)."""

    def __init__(self, config: FaultConfig, seed: int = 0) -> None:
        for kind in config.failure_types:
            if kind not in FAILURE_TYPES:
                raise ValueError(f"unknown failure type {kind!r}; known: {sorted(FAILURE_TYPES)}")
        self.config = config
        self.ready = True
        self._rng = random.Random(seed ^ 0x5EED)
        self._released = asyncio.Event()
        self._released.set()

    @property
    def hang(self) -> bool:
        return not self._released.is_set()

    def set_hang(self, enabled: bool) -> None:
        if enabled:
            self._released.clear()
        else:
            self._released.set()

    async def wait_released(self) -> None:
        """Return once hanging is off (callers are cancelled if the client leaves)."""
        await self._released.wait()

    def pick(self, forced: str | None) -> ApiError | None:
        """The error this request must fail with, if any."""
        if forced:
            kind = _BY_STATUS.get(forced.strip(), forced.strip())
            if kind not in FAILURE_TYPES:
                return ApiError(400, f"unknown {FORCE_ERROR_HEADER} value {forced!r}; use one of "
                                f"{sorted(_BY_STATUS)} or {sorted(FAILURE_TYPES)}")
            return _error(kind)
        cfg = self.config
        if cfg.failure_rate > 0 and cfg.failure_types and self._rng.random() < cfg.failure_rate:
            return _error(self._rng.choice(cfg.failure_types))
        return None
