"""Fixtures shared by the harness's own tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.processes import ProcessSupervisor


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[ProcessSupervisor]:
    with ProcessSupervisor(tmp_path / "logs", grace=2.0) as sup:
        yield sup
