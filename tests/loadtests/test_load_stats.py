from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtests.samples import Sample, read_samples, write_samples
from loadtests.stats import percentiles, summarize
from loadtests.validity import assess


def _s(i: int, **kw: Any) -> Sample:
    base: dict[str, Any] = dict(
        request_id=i,
        group=f"g{i % 2}",
        api="completions",
        stream=True,
        url="/",
        start=float(i),
        ttft_s=0.01 * (i + 1),
        tpot_s=0.005,
        itl_s=[0.004, 0.006],
        e2e_s=0.5,
        prompt_tokens=100,
        completion_tokens=10,
        cached_tokens=50,
        status=200,
        pod=f"p{i % 3}",
    )
    base.update(kw)
    return Sample(**base)


def test_percentiles_match_numpy() -> None:
    values = list(np.random.default_rng(0).exponential(1.0, 1000))
    got = percentiles(values)
    assert got["p90"] == pytest.approx(float(np.percentile(values, 90)))
    assert set(got) == {"p50", "p90", "p95", "p99"}
    assert percentiles([]) == {}


def test_summarize_figures() -> None:
    samples = [_s(i) for i in range(10)] + [_s(10, status=503, error="HTTP 503")]
    s = summarize(samples)
    assert s["count"] == 11 and s["ok"] == 10 and s["error_ratio"] == pytest.approx(1 / 11)
    assert s["ttft"]["count"] == 10 and s["itl"]["count"] == 20
    assert s["hit_rate"] == pytest.approx(0.5)
    assert s["per_pod"] == {"p0": 4, "p1": 3, "p2": 3}
    assert s["tokens"]["completion"] == 100
    assert s["throughput"]["requests_per_s"] == pytest.approx(10 / 10.5)


def test_jsonl_roundtrip(tmp_path: Path) -> None:
    samples = [_s(i) for i in range(3)]
    path = write_samples(tmp_path / "s.jsonl", samples)
    assert read_samples(path) == samples


def test_validity_rate_shortfall_and_cpu() -> None:
    on_time = [_s(i, scheduled=float(i)) for i in range(20)]
    v = assess({"open_loop": True}, on_time)
    assert v.valid and v.achieved_rate == pytest.approx(1.0)
    late = [_s(i, start=float(i) * 1.2, scheduled=float(i)) for i in range(20)]
    v = assess({"open_loop": True, "users_ran_out": 5}, late)
    assert not v.valid and "below 95%" in v.reasons[0]
    assert not assess({"cpu_warning": True}, on_time).valid
