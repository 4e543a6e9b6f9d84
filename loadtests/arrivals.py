"""When each request may be sent: the shared pacer's pure logic (time is passed in).

Closed loop hands out the next request index as soon as a user asks; open loop hands out
index i with a due time from a seeded Poisson or constant-rate schedule that ignores response
times. Stages change the rate (open loop) or the user count (closed loop, via the Locust
shape); requests issued before ``warmup_s`` are flagged as warm-up and left out of verdicts.
The pacer stops after ``max_requests`` or at the end of the last stage, whichever is first.
A user that collects its ticket later than ``LATE_SLACK_S`` after the due time means users
ran out: the offered rate is no longer what the schedule says.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.runconfig import LoadSpec, Stage

__all__ = ["LATE_SLACK_S", "Pacer", "Ticket"]

LATE_SLACK_S = 0.01


@dataclass(frozen=True)
class Ticket:
    """Permission to send request ``index`` (no earlier than ``due``, unix seconds)."""

    index: int
    due: float | None
    warmup: bool
    offered_rate: float | None


class _Schedule:
    """Arrival offsets (seconds from t0) across stages, seeded."""

    def __init__(self, arrival: str, stages: Sequence[Stage], seed: int) -> None:
        self.arrival = arrival
        self.stages = list(stages)
        self.rng = random.Random(seed * 7919 + 1)
        self.stage = 0
        self.stage_start = 0.0
        self.t = 0.0
        self.k = 0  # arrivals so far in this stage

    def next(self) -> tuple[float, float] | None:
        """Next (offset, stage rate), or None after the last stage."""
        while self.stage < len(self.stages):
            st = self.stages[self.stage]
            end = self.stage_start + st.duration_s
            rate = st.rate or 0.0
            if rate > 0:
                if self.k == 0:
                    candidate = self.stage_start
                elif self.arrival == "poisson":
                    candidate = self.t + self.rng.expovariate(rate)
                else:  # by index, so float error cannot add an arrival
                    candidate = self.stage_start + self.k / rate
                if candidate < end - 1e-9:
                    self.t = candidate
                    self.k += 1
                    return candidate, rate
            self.stage += 1
            self.stage_start = self.t = end
            self.k = 0
        return None


class Pacer:
    """The single source of request indices and due times for all users of a run."""

    def __init__(self, spec: LoadSpec, t0: float) -> None:
        self.spec = spec
        self.t0 = t0
        self.stages = spec.effective_stages()
        self.total_s = sum(s.duration_s for s in self.stages)
        self.open_loop = spec.arrival != "closed"
        self.schedule = _Schedule(spec.arrival, self.stages, spec.arrivals_seed)
        self.issued = 0
        self.late = 0
        self.done = False

    @property
    def deadline(self) -> float:
        return self.t0 + self.total_s

    def next(self, now: float) -> Ticket | None:
        """The next ticket, or None when the run is over (request cap or time)."""
        if self.done:
            return None
        cap = self.spec.max_requests
        if cap is not None and self.issued >= cap:
            self.done = True
            return None
        if self.open_loop:
            nxt = self.schedule.next()
            if nxt is None:
                self.done = True
                return None
            offset, rate = nxt
            due = self.t0 + offset
            if now > due + LATE_SLACK_S:
                self.late += 1
            ticket = Ticket(self.issued, due, offset < self.spec.warmup_s, rate)
        else:
            if now >= self.deadline:
                self.done = True
                return None
            warm = self.spec.warmup_s > 0 and now - self.t0 < self.spec.warmup_s
            ticket = Ticket(self.issued, None, warm, None)
        self.issued += 1
        return ticket
