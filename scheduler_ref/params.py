"""Typed access to a plugin's ``parameters`` mapping with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler_ref.durations import parse_duration

__all__ = ["ParamError", "Params"]


class ParamError(ValueError):
    """A bad parameter; ``field`` is its name so config errors can point at it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_MISSING = object()


class Params:
    """Read-only view of plugin parameters; each getter validates and applies the default."""

    def __init__(self, raw: Mapping[str, Any] | None = None) -> None:
        self.raw: Mapping[str, Any] = raw or {}

    def _get(self, *names: str) -> tuple[str, Any]:
        for n in names:
            if n in self.raw and self.raw[n] is not None:
                return n, self.raw[n]
        return names[0], _MISSING

    def number(self, *names: str, default: float, minimum: float | None = None) -> float:
        field, v = self._get(*names)
        if v is _MISSING:
            return default
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ParamError(field, f"must be a number, got {v!r}")
        if minimum is not None and v < minimum:
            raise ParamError(field, f"must be >= {minimum:g}, got {v!r}")
        return float(v)

    def integer(self, *names: str, default: int, minimum: int | None = None) -> int:
        field, v = self._get(*names)
        if v is _MISSING:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise ParamError(field, f"must be an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise ParamError(field, f"must be >= {minimum}, got {v!r}")
        return v

    def boolean(self, *names: str, default: bool) -> bool:
        field, v = self._get(*names)
        if v is _MISSING:
            return default
        if not isinstance(v, bool):
            raise ParamError(field, f"must be true or false, got {v!r}")
        return v

    def string(self, *names: str, default: str) -> str:
        field, v = self._get(*names)
        if v is _MISSING:
            return default
        if not isinstance(v, str):
            raise ParamError(field, f"must be a string, got {v!r}")
        return v

    def strings(self, *names: str, default: list[str]) -> list[str]:
        field, v = self._get(*names)
        if v is _MISSING:
            return list(default)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ParamError(field, f"must be a list of strings, got {v!r}")
        return list(v)

    def mapping(self, *names: str) -> dict[str, Any]:
        field, v = self._get(*names)
        if v is _MISSING:
            return {}
        if not isinstance(v, dict):
            raise ParamError(field, f"must be a mapping, got {v!r}")
        return dict(v)

    def duration(self, *names: str, default: float) -> float:
        field, v = self._get(*names)
        if v is _MISSING:
            return default
        try:
            return parse_duration(v)
        except ValueError as e:
            raise ParamError(field, str(e)) from None
