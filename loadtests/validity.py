"""Is a run valid evidence for an SLO verdict? (not passed, not failed: invalid)

A run is invalid when Locust fired its CPU warning (the generator, not the server, may have
set the latencies) or when the achieved request rate fell below 95% of the target (the
server was not offered the load the verdict claims). For open-loop runs the target is the
rate of the pacer's realised schedule and the achieved rate that of the actual send times
over the same requests, so Poisson noise does not count as a shortfall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtests.samples import Sample

__all__ = ["RATE_TOLERANCE", "Validity", "assess"]

RATE_TOLERANCE = 0.95


@dataclass
class Validity:
    """Why a run may or may not back a verdict."""

    cpu_warning: bool = False
    target_rate: float | None = None
    achieved_rate: float | None = None
    reasons: list[str] = field(default_factory=list)
    users_ran_out: int = 0

    @property
    def valid(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid}


def _rate(times: Sequence[float]) -> float | None:
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else None


def assess(meta: Mapping[str, Any], samples: Sequence[Sample]) -> Validity:
    """Validity from the Locust process's run metadata and the raw samples."""
    v = Validity(
        cpu_warning=bool(meta.get("cpu_warning")), users_ran_out=int(meta.get("users_ran_out", 0))
    )
    if v.cpu_warning:
        v.reasons.append("load generator CPU above 90% (Locust cpu_warning fired)")
    measured = [s for s in samples if not s.warmup and s.scheduled is not None]
    if meta.get("open_loop") and measured:
        v.target_rate = _rate([s.scheduled for s in measured if s.scheduled is not None])
        v.achieved_rate = _rate([s.start for s in measured])
        if v.target_rate and (v.achieved_rate or 0.0) < RATE_TOLERANCE * v.target_rate:
            v.reasons.append(
                f"achieved rate {v.achieved_rate or 0:.2f}/s below {RATE_TOLERANCE:.0%} of target "
                f"{v.target_rate:.2f}/s (users ran out {v.users_ran_out} times)"
            )
    for reason in meta.get("invalid_reasons", []):
        v.reasons.append(str(reason))
    return v
