"""Locality signals from raw samples (LOAD.md): hit rate, stickiness, balance.

Pure functions over :class:`~loadtests.samples.Sample`; the summary, the plots and the
routing suite all compute these figures here, so a report's numbers can be recomputed
from its raw samples.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from loadtests.samples import Sample

__all__ = ["Balance", "HitRate", "Stickiness", "after_first_of_each_group", "balance",
           "stickiness", "top_pod_shares", "usage_hit_rate"]


def after_first_of_each_group(samples: Iterable[Sample]) -> list[Sample]:
    """The samples without each prefix group's earliest request (by send time).

    That request finds every cache cold whichever router picks its pod (a compulsory miss):
    it tells routers apart not at all, yet in a short run it is a sizeable share of all
    requests (groups / requests) and moves a tail percentile between two modes.
    """
    ordered = sorted(samples, key=lambda s: s.start)
    seen: set[str] = set()
    later = []
    for s in ordered:
        if s.group in seen:
            later.append(s)
        seen.add(s.group)
    return later


@dataclass(frozen=True)
class HitRate:
    """Σ cached_tokens / Σ prompt_tokens over successful requests that reported cached tokens.

    A server that does not report ``prompt_tokens_details`` (vLLM's default) leaves the rate
    unknown (``None``), not 0.
    """

    value: float | None
    requests: int  # requests that reported cached tokens


def usage_hit_rate(samples: Iterable[Sample]) -> HitRate:
    reporting = [s for s in samples if s.ok and s.cached_tokens is not None and s.prompt_tokens]
    prompt = sum(s.prompt_tokens or 0 for s in reporting)
    cached = sum(s.cached_tokens or 0 for s in reporting)
    return HitRate(cached / prompt if prompt else None, len(reporting))


@dataclass(frozen=True)
class Stickiness:
    """Per prefix group: share of its requests on its top pod, and its distinct pods."""

    top_pod_share: float  # mean over groups; round robin gives ≈ 1/N
    distinct_pods: float  # mean over groups
    groups: int


def _pods_by_group(samples: Iterable[Sample]) -> dict[str, Counter[str]]:
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    for s in samples:
        if s.ok and s.pod:
            by_group[s.group][s.pod] += 1
    return by_group


def top_pod_shares(samples: Iterable[Sample]) -> list[float]:
    """Per prefix group, the share of its successful requests on its top pod."""
    return [max(c.values()) / sum(c.values()) for c in _pods_by_group(samples).values()]


def stickiness(samples: Iterable[Sample]) -> Stickiness | None:
    """None when no successful request named its pod (``x-inference-pod``)."""
    by_group = _pods_by_group(samples)
    if not by_group:
        return None
    shares = [max(c.values()) / sum(c.values()) for c in by_group.values()]
    distinct = [len(c) for c in by_group.values()]
    return Stickiness(statistics.fmean(shares), statistics.fmean(distinct), len(by_group))


@dataclass(frozen=True)
class Balance:
    """Requests per pod: catches the prefix-only failure where one pod takes everything."""

    per_pod: dict[str, int]
    max_share: float
    coefficient_of_variation: float


def balance(samples: Iterable[Sample], pods: Iterable[str] = ()) -> Balance | None:
    """Per-pod request counts (``pods`` lists pods that may have received none)."""
    counts = Counter({p: 0 for p in pods})
    counts.update(s.pod for s in samples if s.ok and s.pod)
    values = list(counts.values())
    total = sum(values)
    if not total:
        return None
    mean = statistics.fmean(values)
    cv = statistics.pstdev(values) / mean if mean else 0.0
    return Balance(dict(sorted(counts.items())), max(values) / total, cv)
