"""Raw per-request samples: the record every figure and verdict is computed from.

One JSON object per line. Field names follow the metric definitions in LOAD.md (seconds,
token counts from the server's ``usage``); the latency names match inference-perf's
per-request lifecycle fields where they overlap so exports compare side by side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["Sample", "append_samples", "read_samples", "sample_from_dict", "write_samples"]


@dataclass
class Sample:
    """One request as the client saw it (times in seconds, ``start`` is unix time)."""

    request_id: int
    group: str
    api: str
    stream: bool
    url: str
    start: float
    ttft_s: float | None = None
    tpot_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    e2e_s: float | None = None
    ntpot_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    status: int = 0
    error: str | None = None
    pod: str | None = None
    worker: str | None = None
    warmup: bool = False
    offered_rate: float | None = None
    scheduled: float | None = None  # unix time the pacer wanted it sent (open loop)

    @property
    def ok(self) -> bool:
        """Completed with a 2xx status and no client-side error."""
        return self.error is None and 200 <= self.status < 300

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


_FIELDS = {f.name for f in fields(Sample)}


def sample_from_dict(data: dict[str, Any]) -> Sample:
    """Build a Sample, ignoring unknown keys (files written by newer versions still load)."""
    return Sample(**{k: v for k, v in data.items() if k in _FIELDS})


def read_samples(path: Path) -> list[Sample]:
    """All samples of a JSONL file (blank lines skipped)."""
    with Path(path).open() as fh:
        return [sample_from_dict(json.loads(line)) for line in fh if line.strip()]


def write_samples(path: Path, samples: Iterable[Sample]) -> Path:
    """Write samples as JSONL, replacing the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for s in samples:
            fh.write(s.to_json() + "\n")
    return path


def append_samples(path: Path, samples: Iterable[Sample]) -> None:
    """Append samples to a JSONL file (the Locust process streams them out as they finish)."""
    with Path(path).open("a") as fh:
        fh.writelines(s.to_json() + "\n" for s in samples)
