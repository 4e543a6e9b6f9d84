"""The rate sweep: its points, headline figures, llm-d benchmark reports, plots and plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from llmd_benchmark_report import BenchmarkReportV02

from fixtures.benchmark_report import (
    BenchmarkReportError,
    benchmark_report,
    write_benchmark_report,
)
from fixtures.outcomes import FAILED, INCONCLUSIVE, PASSED
from fixtures.plans import PlanError, load_sweep_plan, sweep_rates
from fixtures.report import PROPERTY_KEY, RunReport, summary_lines
from fixtures.summary import SWEEP_DIR, render_run_summary
from fixtures.sweep import SweepPoint, headline, plot_sweep, sweep_point
from loadtests.api import LoadResult
from loadtests.samples import Sample
from loadtests.stats import summarize
from loadtests.validity import Validity

BOUND = 0.25


def _samples(ttfts: list[float], failed: int = 0) -> list[Sample]:
    ok = [Sample(request_id=i, group=f"g{i % 4}", api="completions", stream=True, url="u",
                 start=i * 0.1, ttft_s=t, tpot_s=0.01, itl_s=[0.01, 0.012], e2e_s=t + 0.3,
                 status=200, prompt_tokens=1056, completion_tokens=32, cached_tokens=1024)
          for i, t in enumerate(ttfts)]
    bad = [Sample(request_id=len(ttfts) + i, group="g0", api="completions", stream=True,
                  url="u", start=len(ttfts) * 0.1 + i, status=503, error="overloaded")
           for i in range(failed)]
    return ok + bad


def _point(router: str, rate: float, p90: float, n: int = 200, failed: int = 0,
           reasons: tuple[str, ...] = ()) -> SweepPoint:
    """A point whose TTFTs are spread evenly up to ~1.1 x ``p90`` (its p90 is ~``p90``)."""
    ttfts = list(np.linspace(p90 * 0.5, p90 * 1.0556, n))
    samples = _samples(ttfts, failed)
    result = LoadResult(samples, Path("s.jsonl"), 0,
                        Validity(target_rate=rate, achieved_rate=rate, reasons=list(reasons)),
                        Path("locust.log"), summarize(samples))
    return sweep_point(router, rate, result, planned=n + failed, slo_bound_s=BOUND, seed=1)


SWEEP = [
    *(_point("baseline", r, p) for r, p in ((5, 0.10), (10, 0.15), (15, 0.40), (20, 0.60))),
    *(_point("scheduler", r, p) for r, p in ((5, 0.05), (10, 0.06), (15, 0.08), (20, 0.20))),
]


def test_rates_run_from_light_load_past_saturation() -> None:
    assert sweep_rates(20.0, 5) == [5.0, 11.25, 17.5, 23.75, 30.0]
    with pytest.raises(PlanError, match="at least 2"):
        sweep_rates(20.0, 1)


def test_a_point_carries_its_figures_and_a_ttft_p90_slo_verdict() -> None:
    point = SWEEP[1]
    assert point.valid and point.requests == 200 and point.errors == 0
    assert point.ttft_p90 == pytest.approx(0.15, rel=0.01)
    assert point.slo is not None and point.slo_outcome == PASSED
    assert point.slo.interval.samples == (200,)
    data = point.to_dict()
    assert "ttft_s" not in data and data["ttftP90Slo"]["outcome"] == PASSED
    json.dumps(data)  # the report folds it through user_properties
    assert SWEEP[2].slo_outcome == FAILED  # p90 0.40 on 200 samples: wholly above 0.25


def test_throughput_at_slo_is_the_highest_rate_meeting_the_bound() -> None:
    h = headline(SWEEP, BOUND, seed=1)
    assert (h.at_slo["baseline"].confirmed, h.at_slo["baseline"].possible) == (10, 10)
    assert not h.at_slo["baseline"].censored
    assert h.at_slo["scheduler"].confirmed == 20 and h.at_slo["scheduler"].censored
    assert h.throughput_at_slo_ratio == pytest.approx(2.0)
    assert h.throughput_at_slo_ratio_range == pytest.approx((2.0, 2.0))
    assert h.highest_common_rate == 20
    assert h.ttft_p90_ratio is not None and h.ttft_p90_ratio.outcome == PASSED
    assert h.ttft_p90_ratio.interval.estimate == pytest.approx(0.2 / 0.6, rel=0.02)
    lines = h.lines()
    assert "baseline 10/s" in lines[0] and "scheduler >= 20/s" in lines[0]
    assert h.ratio_bound == "lower"  # the scheduler still met the bound at the top rate
    assert "ratio >= 2 [2, 2]" in lines[0] and "at 20/s" in lines[1] and "→ passed" in lines[1]


def test_a_noisy_point_at_the_bound_widens_the_range_instead_of_moving_the_figure() -> None:
    noisy = _point("baseline", 15, BOUND, n=20)  # p90 on the bound, few samples
    assert noisy.slo_outcome == INCONCLUSIVE
    h = headline([*SWEEP[:2], noisy, SWEEP[3], *SWEEP[4:]], BOUND, seed=1)
    base = h.at_slo["baseline"]
    assert (base.confirmed, base.possible) == (10, 15)
    assert h.throughput_at_slo_ratio == pytest.approx(2.0)
    assert h.throughput_at_slo_ratio_range == pytest.approx((20 / 15, 2.0))


def test_a_ratio_of_two_censored_routers_is_not_read_as_a_figure() -> None:
    both = [_point("baseline", 5, 0.1), _point("scheduler", 5, 0.05)]
    h = headline(both, BOUND, seed=1)
    assert h.throughput_at_slo_ratio == pytest.approx(1.0) and h.ratio_bound == "none"
    assert "ratio n/a (neither router reached its limit" in h.lines()[0]
    assert h.to_dict()["throughputAtSloRatioBound"] == "none"


def test_invalid_points_never_meet_the_slo_nor_count_as_common() -> None:
    errors = _point("baseline", 20, 0.1, failed=3)
    assert not errors.valid and "error ratio 3/203" in errors.problems[0]
    flagged = _point("scheduler", 20, 0.1, reasons=("load generator CPU above 90%",))
    assert not flagged.valid
    h = headline([*SWEEP[:3], errors, *SWEEP[4:7], flagged], BOUND, seed=1)
    assert h.at_slo["baseline"].confirmed == 10 and h.highest_common_rate == 15


def test_negative_control_a_scheduler_slower_at_load_fails_the_ratio() -> None:
    slow = [*SWEEP[:4], *(_point("scheduler", r, p * 3) for r, p in ((15, 0.40), (20, 0.60)))]
    h = headline(slow, BOUND, seed=1)
    assert h.ttft_p90_ratio is not None and h.ttft_p90_ratio.outcome == FAILED


def test_a_ratio_near_one_on_few_requests_is_inconclusive_not_failed() -> None:
    points = [_point("baseline", 20, 0.30, n=16), _point("scheduler", 20, 0.31, n=16)]
    h = headline(points, BOUND, seed=1)
    assert h.ttft_p90_ratio is not None and h.ttft_p90_ratio.outcome == INCONCLUSIVE


def test_no_common_valid_rate_gives_no_ratio() -> None:
    h = headline([SWEEP[0], _point("scheduler", 5, 0.05, failed=1)], BOUND, seed=1)
    assert h.highest_common_rate is None and h.ttft_p90_ratio is None
    assert "n/a" in h.lines()[1]


def test_each_point_is_a_valid_llm_d_benchmark_report(tmp_path: Path) -> None:
    samples = _samples([0.05 + 0.001 * i for i in range(40)])
    result = LoadResult(samples, Path("s"), 0, Validity(), Path("l"), summarize(samples))
    point = sweep_point("scheduler", 10.0, result, planned=40, slo_bound_s=BOUND, seed=1)
    report = benchmark_report(point, samples, model="Qwen/Qwen3-0.6B", run_id="run-1",
                              workload={"type": "shared_prefix"})
    path = write_benchmark_report(report, tmp_path / "br" / "scheduler-10.yaml")
    parsed = BenchmarkReportV02.model_validate(yaml.safe_load(path.read_text()))
    assert parsed.results.request_performance is not None
    aggregate = parsed.results.request_performance.aggregate
    assert aggregate is not None and aggregate.requests is not None
    assert aggregate.requests.total == 40 and aggregate.requests.failures == 0
    assert aggregate.latency is not None and aggregate.latency.time_to_first_token is not None
    assert aggregate.latency.time_to_first_token.p90 == pytest.approx(
        float(np.percentile([0.05 + 0.001 * i for i in range(40)], 90)))
    assert parsed.scenario is not None and parsed.scenario.load is not None
    assert parsed.scenario.load.standardized.rate_qps == 10.0


def test_negative_control_a_report_the_schema_rejects_is_not_written(tmp_path: Path) -> None:
    report = benchmark_report(SWEEP[0], [], model="m", run_id="r", workload={})
    report["results"]["request_performance"]["aggregate"]["latency"]["ttft"] = {}
    path = tmp_path / "bad.yaml"
    with pytest.raises(BenchmarkReportError, match=r"bad\.yaml: .*ttft"):
        write_benchmark_report(report, path)
    assert not path.exists()


def test_the_guide_plots_are_drawn(tmp_path: Path) -> None:
    paths = plot_sweep([*SWEEP, _point("baseline", 25, 0.7, failed=2)], tmp_path, BOUND)
    assert [p.name for p in paths] == ["ttft_p90_vs_qps.png", "throughput_vs_qps.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_the_local_sweep_plan_sizes_rates_from_the_pods(tmp_path: Path) -> None:
    plan = load_sweep_plan("local")
    rates = plan.rates(pods=4, long=False)
    assert len(rates) == plan.short_points and rates[0] < rates[-1]
    assert rates[-1] > plan.saturation_rps_per_pod * 4  # past the baseline's saturation
    assert len(plan.rates(pods=4, long=True)) == plan.long_points
    assert plan.rates(pods=2, long=False)[-1] == pytest.approx(rates[-1] / 2, abs=0.01)
    assert plan.requests_at(1.0) == plan.min_requests
    for target in ("kind", "cluster"):
        assert load_sweep_plan(target).long_points >= 6


@pytest.mark.parametrize(("body", "message"), [
    ("sweep: {short_points: 3}\n", r"sweep\.saturation_rps_per_pod: required"),
    ("sweep: {short_points: 3, pace: 1}\n", r"sweep\.pace: unknown field"),
    ("sweep: {saturation_rps_per_pod: 4, short_points: 2.5, long_points: 7, "
     "seconds_per_point: 4, min_requests: 20, expected_latency_s: 1}\n",
     r"sweep\.short_points: expected a whole number, got 2\.5"),
    ("sweep: {saturation_rps_per_pod: -1, short_points: 3, long_points: 7, "
     "seconds_per_point: 4, min_requests: 20, expected_latency_s: 1}\n",
     r"sweep\.saturation_rps_per_pod: expected a positive number, got -1"),
    ("routing: {}\n", "missing section 'sweep'"),
])
def test_a_bad_sweep_plan_names_file_and_field(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "local.yaml").write_text(body)
    with pytest.raises(PlanError, match=message):
        load_sweep_plan("local", tmp_path)


def test_the_sweep_lands_in_the_report_the_summary_and_summary_html(tmp_path: Path) -> None:
    h = headline(SWEEP, BOUND, seed=1)
    data = {"mode": "short", "points": [p.to_dict() for p in SWEEP], "headline": h.to_dict(),
            "headlineLines": h.lines(), "benchmarkReports": ["sweep/benchmark-reports/x.yaml"]}
    prop = (PROPERTY_KEY, json.dumps({"kind": "sweep", "sweep": data}))
    report = RunReport(run_dir=tmp_path, target="local", gateway="local")
    node = "suites/routing/test_sweep.py::test_rate_sweep_scheduler_vs_baseline"
    for when in ("setup", "call", "teardown"):
        report.add_phase(node, when, "passed", 0.0, "", "", [prop])
    doc = report.to_dict([])
    assert len(doc["sweep"]) == 1
    ratio = doc["sweep"][0]["headline"]["ttftP90RatioAtHighestCommonRate"]
    assert ratio["interval"]["samples"] == [200, 200] and ratio["outcome"] == PASSED
    assert doc["sweep"][0]["headline"]["throughputAtSloRatio"] == pytest.approx(2.0)
    lines = summary_lines(doc)
    assert any("sweep throughput at SLO" in line for line in lines)
    assert any("sweep TTFT p90 scheduler/baseline at 20/s" in line for line in lines)
    plot_sweep(SWEEP, tmp_path / SWEEP_DIR, BOUND)
    page = render_run_summary(tmp_path, lines)  # a sweep-only run still gets its page
    assert page is not None
    text = page.read_text()
    assert 'src="sweep/ttft_p90_vs_qps.png"' in text and "sweep throughput at SLO" in text
