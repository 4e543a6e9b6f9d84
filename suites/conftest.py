"""Fixtures shared by the verification suites: clients bound to the stack under test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fixtures.stack import Stack

# Inference timeouts: generous enough for a cold GPU pod, bounded so nothing hangs.
REQUEST_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        yield client


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    """A client whose base URL is the inference gateway (the path under test)."""
    with httpx.Client(base_url=stack.gateway_url, timeout=REQUEST_TIMEOUT) as client:
        yield client


@pytest.fixture(scope="session")
def baseline(stack: Stack) -> Iterator[httpx.Client]:
    """A client for the round-robin baseline over the same pods (a plain Service)."""
    with httpx.Client(base_url=stack.baseline_url, timeout=REQUEST_TIMEOUT) as client:
        yield client
