"""Summary figures from raw samples: percentiles with numpy, never from bucketed stats.

Every percentile is reported beside its sample count. Names follow LOAD.md: TTFT, TPOT
(per request), ITL (pooled gaps), E2E, NTPOT; throughput from ``usage`` token counts; hit
rate is token-weighted (cached / prompt tokens) over the requests whose server reported
``cached_tokens`` (``hit_rate_count``); None when none did.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from loadtests.locality import stickiness, usage_hit_rate
from loadtests.samples import Sample

__all__ = [
    "DEFAULT_PERCENTILES",
    "METRICS",
    "metric_values",
    "percentiles",
    "summarize",
    "summary_csv",
]

DEFAULT_PERCENTILES = (50, 90, 95, 99)
METRICS = ("ttft", "tpot", "itl", "e2e", "ntpot")


def percentiles(
    values: Iterable[float], ps: Sequence[float] = DEFAULT_PERCENTILES
) -> dict[str, float]:
    """``{"p50": ..., "p90": ...}`` (linear interpolation); empty input gives an empty dict."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return {}
    qs = np.percentile(arr, list(ps))
    return {f"p{p:g}": float(q) for p, q in zip(ps, qs, strict=True)}


def metric_values(samples: Iterable[Sample], metric: str) -> list[float]:
    """Values of one metric over successful samples (ITL pooled over requests)."""
    ok = [s for s in samples if s.ok]
    if metric == "itl":
        return [g for s in ok for g in s.itl_s]
    attr = f"{metric}_s"
    return [v for s in ok if (v := getattr(s, attr)) is not None]


def _metric_summary(samples: Sequence[Sample], metric: str) -> dict[str, Any]:
    values = metric_values(samples, metric)
    out: dict[str, Any] = {"count": len(values)}
    if values:
        out.update(percentiles(values))
        out["mean"] = float(np.mean(values))
        out["max"] = float(np.max(values))
    return out


def _span(samples: Sequence[Sample]) -> float:
    starts = [s.start for s in samples]
    ends = [s.start + (s.e2e_s or 0.0) for s in samples]
    return max(ends) - min(starts) if samples else 0.0


def summarize(samples: Sequence[Sample], include_warmup: bool = False) -> dict[str, Any]:
    """Counts, error ratio, latency percentiles, throughput, hit rate and per-pod figures."""
    measured = [s for s in samples if include_warmup or not s.warmup]
    ok = [s for s in measured if s.ok]
    span = _span(measured)
    prompt = sum(s.prompt_tokens or 0 for s in ok)
    completion = sum(s.completion_tokens or 0 for s in ok)
    cached = sum(s.cached_tokens or 0 for s in ok)
    hit_rate = usage_hit_rate(ok)
    per_pod = Counter(s.pod or "unknown" for s in ok)
    sticky = stickiness(ok)
    return {
        "count": len(measured),
        "ok": len(ok),
        "errors": len(measured) - len(ok),
        "error_ratio": (len(measured) - len(ok)) / len(measured) if measured else 0.0,
        "warmup_excluded": len(samples) - len(measured),
        "duration_s": span,
        "throughput": {
            "requests_per_s": len(ok) / span if span > 0 else 0.0,
            "output_tokens_per_s": completion / span if span > 0 else 0.0,
            "total_tokens_per_s": (prompt + completion) / span if span > 0 else 0.0,
        },
        "tokens": {"prompt": prompt, "completion": completion, "cached": cached},
        "hit_rate": hit_rate.value,
        "hit_rate_count": hit_rate.requests,
        **{metric: _metric_summary(measured, metric) for metric in METRICS},
        "per_pod": dict(sorted(per_pod.items())),
        "stickiness": sticky.top_pod_share if sticky else None,
        "status_codes": {str(k): v for k, v in sorted(Counter(s.status for s in measured).items())},
    }


def summary_csv(summary: dict[str, Any]) -> str:
    """The latency part of ``summarize`` as CSV (seconds), one row per metric."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["metric", "count", "p50_s", "p90_s", "p95_s", "p99_s", "mean_s"])
    for m in METRICS:
        s = summary[m]
        w.writerow([m, s["count"], *[s.get(k, "") for k in ("p50", "p90", "p95", "p99", "mean")]])
    return out.getvalue()
