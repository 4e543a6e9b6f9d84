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

Following another scheduler (``follow``): when its pick for request *i* is known, that pick
is what scheduler_ref's PreRequest hooks record, so request *i + 1* is decided on the state the
other scheduler had; otherwise one coin toss would make every later decision of that prefix
group differ. ``agreement`` then counts how often the two picked the same endpoint.
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
from scheduler_ref.scrape import parse_metrics
from scheduler_ref.types import Decision, Endpoint, SchedulingError

__all__ = ["Agreement", "ReplayPick", "ReplayRequest", "agreement", "endpoints_from_metrics",
           "quiescent_endpoints", "replay"]

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


def endpoints_from_metrics(pages: Mapping[str, str],
                           names: Mapping[str, str] | None = None) -> list[Endpoint]:
    """Endpoints as a scrape of each ``address -> /metrics page`` shows them, fresh at the
    replay's clock (the live pods' own KV usage, block size and block count)."""
    return [Endpoint(key=address, name=(names or {}).get(address, address),
                     metrics_time=NOW, **parse_metrics(text))
            for address, text in pages.items()]


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
           config: SchedulerConfig | str = DEFAULT_CONFIG, seed: int = 0,
           follow: Sequence[str | None] | None = None) -> list[ReplayPick]:
    """Schedule ``requests`` in order on ``endpoints`` (fixed metrics); one pick each.

    ``follow[i]``, when given and not None, is the endpoint another scheduler picked for
    request *i*: scheduler_ref's state records that one (see the module docstring).
    """
    if follow is not None and len(follow) != len(requests):
        raise ValueError(f"follow: {len(follow)} picks for {len(requests)} requests")
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
            d = scheduler.schedule(req, endpoints, NOW,
                                   record_as=follow[i] if follow is not None else None)
        except SchedulingError as e:
            out.append(ReplayPick(i, None, {}, (), False, f"{e.code} - {e.message}"))
            continue
        totals = _order_free_totals(cfg, d, used_before)
        best = max(totals.values())
        top = tuple(k for k, t in totals.items() if t == best)
        out.append(ReplayPick(i, d.picked, d.scores, top, len(top) > 1))
    return out


@dataclass(frozen=True)
class Agreement:
    """How often scheduler_ref's pick equalled another scheduler's, ties excluded."""

    requests: int
    compared: int  # neither tied, refused nor unanswered by the other side
    agreed: int
    tied: int
    refused: int  # refused by either side
    disagreements: tuple[tuple[int, str, str], ...]  # (index, ours, theirs)

    @property
    def share(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


def agreement(ours: Sequence[ReplayPick], theirs: Sequence[str | None]) -> Agreement:
    """Compare picks request by request; ``theirs[i]`` None means the other side refused."""
    if len(ours) != len(theirs):
        raise ValueError(f"{len(ours)} replayed picks vs {len(theirs)} picks to compare")
    tied = sum(1 for p in ours if p.tied)
    refused = sum(1 for p, t in zip(ours, theirs, strict=True)
                  if not p.tied and (p.picked is None or t is None))
    compared = [(p, t) for p, t in zip(ours, theirs, strict=True)
                if not p.tied and p.picked is not None and t is not None]
    differ = tuple((p.index, p.picked or "", t) for p, t in compared if p.picked != t)
    return Agreement(len(ours), len(compared), len(compared) - len(differ), tied, refused,
                     differ)
