"""Sequential replay for the fidelity suite: scheduler_ref's pick for each request of a
recorded sequence, against fixed (quiescent) endpoint metrics.

Pure: no I/O, no clock. Each request goes through the same parse -> schedule -> PreRequest
path as the server, so the prefix index and the no-hit-lru state evolve as in a live run.

Tie rule (requests whose pick is a coin toss are excluded from agreement): a pick is *tied*
when more than one endpoint has the top weighted total, with totals summed in the profile's
order as the EPP sums them. The EPP's max-score-picker breaks such ties at random, so neither
side's choice can be compared. no-hit-lru adds one more coin toss: for a request with no prefix
hit it ranks never-used endpoints by their position in the candidate list, an order the EPP
takes from its datastore (not stable across processes); so for such requests every never-used
endpoint is given the best never-used score (1.0) before the top is taken.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler_ref.config import DEFAULT_CONFIG, SchedulerConfig, load_config
from scheduler_ref.plugins.no_hit_lru_scorer import NoHitLRUScorer
from scheduler_ref.request_parse import parse_request
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.types import Decision, Endpoint, SchedulingError

__all__ = ["ReplayPick", "ReplayRequest", "quiescent_endpoints", "replay"]

NOW = 0.0


@dataclass(frozen=True)
class ReplayRequest:
    """One recorded request: an OpenAI body and the path it was sent to."""

    body: Mapping[str, Any] | bytes
    path: str = ""  # default: chat when the body has messages, else completions
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()

    def route(self) -> str:
        if self.path:
            return self.path
        chat = isinstance(self.body, Mapping) and "messages" in self.body
        return "/v1/chat/completions" if chat else "/v1/completions"


@dataclass(frozen=True)
class ReplayPick:
    """scheduler_ref's answer to one replayed request."""

    index: int
    picked: str | None  # endpoint key; None when the request was refused
    scores: dict[str, dict[str, float]]  # endpoint -> plugin -> clamped score, plus "total"
    top: tuple[str, ...]  # endpoints sharing the top (order-independent) total
    tied: bool  # len(top) > 1: exclude from agreement
    error: str = ""  # "Code - message" when refused


def quiescent_endpoints(addresses: Sequence[str], kv_usage: Sequence[float] | None = None,
                        block_size: int = 0, num_gpu_blocks: int = 0,
                        names: Sequence[str] | None = None) -> list[Endpoint]:
    """Idle pods: nothing waiting or running, KV usage from ``kv_usage`` (default 0),
    metrics fresh at the replay's clock."""
    kv = list(kv_usage) if kv_usage is not None else [0.0] * len(addresses)
    if len(kv) != len(addresses):
        raise ValueError(f"{len(kv)} kv_usage values for {len(addresses)} endpoints")
    return [Endpoint(key=a, name=names[i] if names else a, kv_usage=kv[i],
                     block_size=block_size, num_gpu_blocks=num_gpu_blocks, metrics_time=NOW)
            for i, a in enumerate(addresses)]


def _order_free_totals(config: SchedulerConfig, d: Decision,
                       used_before: Mapping[str, set[str]]) -> dict[str, float]:
    """Totals with every never-used endpoint given no-hit-lru's best score on a cold request,
    summed in profile order (the same float operations as the scheduler)."""
    cold = not d.prefix_match_blocks
    totals: dict[str, float] = {}
    for key, row in d.scores.items():
        total = 0.0
        for scorer, weight in config.profiles[0].scorers:
            score = row[scorer.name]
            if (cold and isinstance(scorer, NoHitLRUScorer) and len(d.scores) > 1
                    and key not in used_before[scorer.name]):
                score = 1.0
            total += score * weight
        totals[key] = total
    return totals


def replay(requests: Sequence[ReplayRequest], endpoints: Sequence[Endpoint],
           config: SchedulerConfig | str = DEFAULT_CONFIG, seed: int = 0) -> list[ReplayPick]:
    """Schedule ``requests`` in order on ``endpoints`` (fixed metrics); one pick each."""
    cfg = load_config(config, "<replay>") if isinstance(config, str) else config
    scheduler = Scheduler(cfg, rng=random.Random(seed))
    scheduler.endpoints_changed({e.key for e in endpoints})
    lrus = {p.name: p for p in cfg.plugins.values() if isinstance(p, NoHitLRUScorer)}
    out: list[ReplayPick] = []
    for i, r in enumerate(requests):
        used_before = {name: set(p.used) for name, p in lrus.items()}
        headers = {"x-request-id": f"replay-{i}", **{k.lower(): v for k, v in r.headers.items()}}
        try:
            req = parse_request(r.route(), headers, r.encoded())
            d = scheduler.schedule(req, endpoints, NOW)
        except SchedulingError as e:
            out.append(ReplayPick(i, None, {}, (), False, f"{e.code} - {e.message}"))
            continue
        totals = _order_free_totals(cfg, d, used_before)
        best = max(totals.values())
        top = tuple(k for k, t in totals.items() if t == best)
        out.append(ReplayPick(i, d.picked, d.scores, top, len(top) > 1))
    return out
