"""``LoadSpec``: everything a load run needs, serialisable so the Locust process (and every
worker, also on other machines) rebuilds the same run from one JSON string."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from loadtests.workloads import WorkloadSpec, load_workload, workload_to_dict

__all__ = ["CLOSED_LOOP_USERS", "USER_HEADROOM", "LoadSpec", "Stage", "open_loop_users",
           "spec_from_json", "spec_to_json"]

Arrival = Literal["closed", "poisson", "constant"]

CLOSED_LOOP_USERS = 8
USER_HEADROOM = 2.0  # users per request expected in flight (Little's law, times two)


def open_loop_users(rate: float, expected_latency_s: float) -> int:
    """Users an open-loop run needs so its offered rate is achieved.

    ``rate x expected_latency_s`` requests are in flight on average (Little's law); twice
    that leaves room for Poisson bursts and for latency growing past saturation, so
    saturation shows as queueing at the server, not as a generator that ran out of users
    (an open-loop run with too few users is a closed-loop run in disguise).
    """
    if rate <= 0 or expected_latency_s <= 0:
        raise ValueError(f"open_loop_users: rate ({rate}) and expected latency "
                         f"({expected_latency_s}) must be > 0")
    return max(CLOSED_LOOP_USERS, math.ceil(rate * expected_latency_s * USER_HEADROOM))


@dataclass(frozen=True)
class Stage:
    """A step of a ladder: ``rate`` (open loop, req/s) or ``users`` (closed loop)."""

    duration_s: float
    rate: float | None = None
    users: int | None = None


@dataclass
class LoadSpec:
    """A load run: target, workload, arrival process and bounds (requests AND time).

    ``ignore_eos`` (default True) asks the server to generate exactly ``max_tokens`` tokens so
    output lengths match the workload's ``output_len`` as in inference-perf runs.
    Without ``stages`` the run lasts ``warmup_s + duration_s``; with ``stages`` it lasts their
    sum and ``warmup_s`` marks the first seconds of the ladder as warm-up.
    """

    base_url: str
    model: str
    workload: WorkloadSpec
    api: Literal["completions", "chat"] = "completions"
    stream: bool = True
    users: int = CLOSED_LOOP_USERS
    arrival: Arrival = "closed"
    rate: float | None = None
    max_requests: int | None = None
    duration_s: float = 30
    warmup_s: float = 0
    processes: int = 1
    extra_headers: dict[str, str] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    ignore_eos: bool = True
    request_timeout_s: float = 120.0
    spawn_rate: float | None = None  # users/s; default: all at once
    # seeds the arrival schedule apart from prompt content (None: the workload's seed), so a
    # run whose prompts are reseeded (fresh prefixes on warm pods) keeps the same arrivals
    arrival_seed: int | None = None

    @property
    def arrivals_seed(self) -> int:
        return self.workload.seed if self.arrival_seed is None else self.arrival_seed

    def validate(self) -> None:
        """Raise ValueError naming the field when the spec cannot run."""
        if self.arrival not in ("closed", "poisson", "constant"):
            raise ValueError(f"arrival: unknown {self.arrival!r} (closed, poisson, constant)")
        if self.api not in ("completions", "chat"):
            raise ValueError(f"api: unknown {self.api!r} (completions, chat)")
        if self.arrival != "closed" and not self.stages and not (self.rate and self.rate > 0):
            raise ValueError(f"rate: open-loop arrival {self.arrival!r} needs rate > 0")
        if self.users < 1:
            raise ValueError(f"users: must be >= 1, got {self.users}")
        if self.max_requests is not None and self.max_requests < 1:
            raise ValueError(f"max_requests: must be >= 1, got {self.max_requests}")
        if self.processes < 1:
            raise ValueError(f"processes: must be >= 1, got {self.processes}")
        if self.duration_s <= 0 and not self.stages:
            raise ValueError(f"duration_s: must be > 0, got {self.duration_s}")
        if self.warmup_s < 0:
            raise ValueError(f"warmup_s: must be >= 0, got {self.warmup_s}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s: must be > 0, got {self.request_timeout_s}")
        for i, stage in enumerate(self.stages):
            if stage.duration_s <= 0:
                raise ValueError(f"stages[{i}].duration_s: must be > 0, got {stage.duration_s}")
            level, value = ("rate", stage.rate) if self.arrival != "closed" else (
                "users", stage.users)
            if value is None and level == "rate":
                raise ValueError(f"stages[{i}].rate: required for open-loop {self.arrival!r}")
            if value is not None and value <= 0:
                raise ValueError(f"stages[{i}].{level}: must be > 0, got {value}")

    def effective_stages(self) -> list[Stage]:
        """The explicit stages, or one stage covering warm-up plus duration."""
        if self.stages:
            return list(self.stages)
        return [Stage(self.warmup_s + self.duration_s, self.rate, self.users)]

    def total_s(self) -> float:
        return sum(s.duration_s for s in self.effective_stages())

    def max_users(self) -> int:
        return max([self.users, *[s.users or 0 for s in self.stages]])


def spec_to_json(spec: LoadSpec) -> str:
    data = asdict(spec)
    data["workload"] = workload_to_dict(spec.workload)
    return json.dumps(data)


def spec_from_json(text: str) -> LoadSpec:
    data: dict[str, Any] = json.loads(text)
    data["workload"] = load_workload(data["workload"], "spec.workload")
    data["stages"] = [Stage(**s) for s in data.get("stages", [])]
    return LoadSpec(**data)
