"""Fuzz totals per component into the run report (``report.yaml`` figures).

Each fuzz test stops at its first 5xx, hang or crash, so a recorded total with ``hangs 0`` and
``crashes 0`` means every case was answered; the counts by status or outcome say how.
"""

from __future__ import annotations

from collections.abc import Mapping

from fixtures.plugin import Evidence, Figure

__all__ = ["record_fuzz_totals"]


def record_fuzz_totals(evidence: Evidence, component: str,
                       counts: Mapping[int, int] | Mapping[str, int]) -> None:
    """One figure: cases sent to ``component``, with 4xx / 5xx / by-outcome counts."""
    items: list[tuple[int | str, int]] = list(counts.items())
    total = sum(n for key, n in items if key != "valid")
    statuses = {k: n for k, n in items if isinstance(k, int)}
    four = sum(n for k, n in statuses.items() if 400 <= k < 500)
    five = sum(n for k, n in statuses.items() if k >= 500)
    shown = ", ".join(f"{k}: {n}" for k, n in sorted(items, key=lambda kv: str(kv[0])))
    evidence.figure(Figure(f"fuzz_{component}", total, "cases", samples=total,
                           threshold="5xx = 0, crashes = 0, hangs = 0 (the test stops at the "
                                     "first)",
                           note=f"4xx {four}, 5xx {five}, crashes 0, hangs 0; {shown}"))
