"""Plugin registry: config ``type`` name -> plugin class (each plugin registers itself)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from scheduler_ref.params import Params
from scheduler_ref.plugins.base import Plugin

__all__ = ["create", "known_types", "register"]

_TYPES: dict[str, type[Plugin]] = {}
P = TypeVar("P", bound=type[Plugin])


def register(*type_names: str) -> Callable[[P], P]:
    """Class decorator: make the plugin creatable under each of ``type_names``."""

    def deco(cls: P) -> P:
        cls.type_name = type_names[0]
        for t in type_names:
            _TYPES[t] = cls
        return cls

    return deco


def _load_builtin() -> None:
    import scheduler_ref.plugins.builtin  # noqa: F401  (registers every plugin)


def known_types() -> list[str]:
    _load_builtin()
    return sorted(_TYPES)


def create(type_name: str, name: str, params: Params) -> Plugin:
    """Instantiate a plugin; KeyError for an unknown type, ParamError for bad parameters."""
    _load_builtin()
    return _TYPES[type_name](name, params)
