from __future__ import annotations

import pytest

from loadtests.arrivals import Pacer
from loadtests.runconfig import LoadSpec, Stage
from loadtests.workloads import load_workload

WL = load_workload({"type": "random", "seed": 3, "random": {"input_len": 4, "output_len": 2}})


def _drain(p: Pacer, now: float = 0.0) -> list:
    out = []
    while (t := p.next(now)) is not None:
        out.append(t)
    return out


def test_closed_loop_cap_is_exact() -> None:
    p = Pacer(LoadSpec("http://x", "m", WL, max_requests=17), t0=0.0)
    tickets = _drain(p)
    assert [t.index for t in tickets] == list(range(17)) and p.done


def test_closed_loop_stops_at_deadline() -> None:
    p = Pacer(LoadSpec("http://x", "m", WL, duration_s=5), t0=0.0)
    assert p.next(1.0) is not None and p.next(5.0) is None


def test_poisson_rate_within_tolerance() -> None:
    # 60 s at 50/s -> ~3000 arrivals; Poisson sd ~ sqrt(3000) ~ 55 (1.8%); allow 6%.
    p = Pacer(LoadSpec("http://x", "m", WL, arrival="poisson", rate=50, duration_s=60), t0=0.0)
    tickets = _drain(p, now=-1.0)
    assert abs(len(tickets) - 3000) < 180
    dues = [t.due for t in tickets]
    assert dues == sorted(dues) and dues[-1] < 60
    again = _drain(
        Pacer(LoadSpec("http://x", "m", WL, arrival="poisson", rate=50, duration_s=60), t0=0.0),
        now=-1.0,
    )
    assert [t.due for t in again] == dues  # seeded


def test_rate_ladder_warmup_and_late_detection() -> None:
    spec = LoadSpec(
        "http://x",
        "m",
        WL,
        arrival="constant",
        warmup_s=1.0,
        stages=[Stage(2.0, rate=5), Stage(2.0, rate=10)],
    )
    p = Pacer(spec, t0=100.0)
    tickets = _drain(p, now=0.0)
    assert len(tickets) == 10 + 20
    assert sum(t.warmup for t in tickets) == 5
    assert {t.offered_rate for t in tickets[:10]} == {5} and tickets[10].offered_rate == 10
    assert tickets[10].due == pytest.approx(102.0)
    late = Pacer(spec, t0=100.0)
    late.next(now=200.0)
    assert late.late == 1


def test_arrivals_are_seeded_apart_from_prompts() -> None:
    """A reseeded workload (fresh prefixes) keeps its arrivals when ``arrival_seed`` is set."""
    from dataclasses import replace

    spec = LoadSpec("http://x", "m", WL, arrival="poisson", rate=20, duration_s=5)
    reseeded = replace(spec, workload=replace(WL, seed=WL.seed + 1))
    dues = [t.due for t in _drain(Pacer(spec, t0=0.0))]
    assert [t.due for t in _drain(Pacer(replace(reseeded, arrival_seed=WL.seed),
                                        t0=0.0))] == dues
    assert [t.due for t in _drain(Pacer(reseeded, t0=0.0))] != dues  # control: seed matters
