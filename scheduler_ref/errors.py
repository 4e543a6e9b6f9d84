"""Startup failures the CLI reports as one line and exit 2 (flag or file named first)."""

from __future__ import annotations

__all__ = ["StartupError"]


class StartupError(Exception):
    """Cannot start: a port in use, TLS material missing, a bad flag value."""
