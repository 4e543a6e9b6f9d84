"""The pure scheduling cycle: (request, endpoint snapshots, plugin/index state, now) -> Decision.

No I/O and no clock reads inside: the caller passes ``now`` (and optionally a ``timer`` used
only to measure plugin durations for metrics), so decisions can be benchmarked, fuzzed and
replayed. Plugin state (prefix index, in-flight counts) lives in the plugin instances.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from scheduler_ref.config import SchedulerConfig
from scheduler_ref.plugins.base import EndpointsHook, PreRequest, ResponseHook
from scheduler_ref.plugins.prefix_cache_scorer import HASHES, MATCHES
from scheduler_ref.types import CycleState, Decision, Endpoint, LLMRequest, SchedulingError

__all__ = ["Scheduler"]

Timer = Callable[[], float]


def _ip(key: str) -> str:
    return key.rsplit(":", 1)[0] if key.count(":") == 1 or key.startswith("[") else key


def _candidate(candidates: Sequence[Endpoint], key: str) -> Endpoint:
    for e in candidates:
        if e.key == key:
            return e
    raise ValueError(f"record_as: {key!r} is not a candidate of this cycle "
                     f"({', '.join(e.key for e in candidates)})")


class Scheduler:
    """Runs the configured profile over fresh endpoints and records the pick."""

    def __init__(
        self,
        config: SchedulerConfig,
        staleness: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.staleness = staleness
        self.rng = rng or random.Random()
        plugins = list(config.plugins.values())
        self._pre_request = [p for p in plugins if isinstance(p, PreRequest)]
        self._response = [p for p in plugins if isinstance(p, ResponseHook)]
        self._endpoint_hooks = [p for p in plugins if isinstance(p, EndpointsHook)]

    def fresh(self, endpoints: Sequence[Endpoint], now: float) -> list[Endpoint]:
        """Endpoints whose metrics are recent enough to be trusted."""
        limit = self.staleness
        return [e for e in endpoints
                if e.metrics_time is not None and now - e.metrics_time <= limit]

    def schedule(
        self,
        req: LLMRequest,
        endpoints: Sequence[Endpoint],
        now: float,
        subset: Sequence[str] | None = None,
        timer: Timer | None = None,
        record_as: str | None = None,
    ) -> Decision:
        """One scheduling cycle; raises SchedulingError (503 / 429) when nothing fits.

        ``record_as`` (a replay following another scheduler): PreRequest hooks record that
        candidate as the target instead of this cycle's pick, so plugin state evolves as the
        other scheduler's did; the Decision still reports this scheduler's own pick.
        """
        candidates = self.fresh(endpoints, now)
        if subset is not None:
            wanted = {_ip(s) for s in subset} | set(subset)
            candidates = [e for e in candidates if e.key in wanted or _ip(e.key) in wanted]
        if not candidates:
            raise SchedulingError("ServiceUnavailable",
                                  "failed to find candidate endpoints for serving the request")
        detector = self.config.saturation
        if req.priority < 0 and detector is not None and detector.saturation(endpoints, now) >= 1:
            raise SchedulingError("InferencePoolResourceExhausted",
                                  "system saturated, sheddable request dropped")
        profile = self.config.profiles[0]
        state: CycleState = {}
        durations: dict[tuple[str, str, str], float] = {}
        for f in profile.filters:
            t0 = timer() if timer else 0.0
            candidates = f.filter(req, candidates, state, now)
            if timer:
                durations[("Filter", f.type_name, f.name)] = timer() - t0
            if not candidates:
                raise SchedulingError("ResourceExhausted",
                                      f"failed to run scheduler profile '{profile.name}': "
                                      f"filter '{f.name}' left no endpoints")
        n = len(candidates)
        clamped_by_scorer: dict[int, list[float]] = {}
        # A scorer may read another's cycle state (no-hit-lru reads the prefix match, which
        # GAIE computes before any scorer): those run first; totals are still summed in the
        # profile's order so float rounding, and so ties, are the EPP's.
        for idx in sorted(range(len(profile.scorers)),
                          key=lambda k: not getattr(profile.scorers[k][0], "runs_first", False)):
            scorer = profile.scorers[idx][0]
            t0 = timer() if timer else 0.0
            raw = scorer.score(req, candidates, state, now)
            if timer:
                durations[("Scorer", scorer.type_name, scorer.name)] = timer() - t0
            clamped_by_scorer[idx] = [0.0 if s < 0.0 else 1.0 if s > 1.0 else s for s in raw]
        totals = [0.0] * n
        per_plugin: list[tuple[str, list[float]]] = []
        for idx, (scorer, weight) in enumerate(profile.scorers):
            clamped = clamped_by_scorer[idx]
            per_plugin.append((scorer.name, clamped))
            for i in range(n):
                totals[i] += clamped[i] * weight
        picker = profile.picker
        assert picker is not None
        t0 = timer() if timer else 0.0
        chosen = picker.pick(list(zip(candidates, totals, strict=True)), self.rng)
        if timer:
            durations[("Picker", picker.type_name, picker.name)] = timer() - t0
        if not chosen:
            raise SchedulingError("ResourceExhausted",
                                  f"picker '{picker.name}' picked no endpoint")
        picked = chosen[0]
        target = picked if record_as is None else _candidate(candidates, record_as)
        for hook in self._pre_request:
            t0 = timer() if timer else 0.0
            hook.pre_request(req, target, state, now)
            if timer:
                durations[("PreRequest", hook.type_name, hook.name)] = timer() - t0
        scores: dict[str, dict[str, float]] = {}
        for i, e in enumerate(candidates):
            row = {name: vals[i] for name, vals in per_plugin}
            row["total"] = totals[i]
            scores[e.key] = row
        matches: dict[str, int] = state.get(MATCHES, {})
        return Decision(
            request_id=req.request_id,
            model=req.model,
            profile=profile.name,
            picked=picked.key,
            fallbacks=[e.key for e in chosen[1:]],
            scores=scores,
            prefix_match_blocks=dict(matches),
            prefix_total_blocks=len(state.get(HASHES, ())),
            candidates=n,
            plugin_seconds=durations,
            picked_endpoint=picked,
        )

    def pick_any(self, endpoints: Sequence[Endpoint], now: float) -> Endpoint:
        """A random endpoint for body-less requests (GET /v1/models), fresh ones preferred."""
        pool = self.fresh(endpoints, now) or list(endpoints)
        if not pool:
            raise SchedulingError("ServiceUnavailable", "no endpoints available in datastore")
        return self.rng.choice(pool)

    def response_headers(self, req: LLMRequest, endpoint: Endpoint) -> dict[str, str]:
        out: dict[str, str] = {}
        for hook in self._response:
            out.update(hook.response_headers(req, endpoint))
        return out

    def response_complete(self, req: LLMRequest, endpoint: str, now: float) -> None:
        for hook in self._response:
            hook.response_complete(req, endpoint, now)

    def endpoints_changed(self, keys: set[str]) -> None:
        """Purge per-endpoint plugin state (prefix index entries) for endpoints that left."""
        for hook in self._endpoint_hooks:
            hook.endpoints_changed(keys)

    def prefix_index_size(self) -> int:
        total = 0
        for p in self.config.plugins.values():
            index = getattr(p, "index", None)
            if index is not None:
                total += index.entries
        return total
