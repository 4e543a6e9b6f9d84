"""A comparison is only evidence when both runs are healthy; otherwise it is invalid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.comparison import RoutedRun, RunHealth, require_clean_run, require_healthy
from fixtures.outcomes import Invalid
from fixtures.plans import LoadPlan
from loadtests.api import LoadResult
from loadtests.samples import Sample
from loadtests.validity import Validity


def _run(label: str, ok: int, errors: int = 0, reasons: tuple[str, ...] = (),
         warmup_errors: int = 0) -> RoutedRun:
    samples = [Sample(i, "g", "completions", True, "u", float(i), ttft_s=0.1, status=200)
               for i in range(ok)]
    samples += [Sample(ok + i, "g", "completions", True, "u", float(ok + i), status=503,
                       error="HTTP 503") for i in range(errors)]
    samples += [Sample(ok + errors + i, "g", "completions", True, "u", 0.0, status=503,
                       error="HTTP 503", warmup=True) for i in range(warmup_errors)]
    result = LoadResult(samples=samples, samples_path=Path("samples.jsonl"), exit_code=0,
                        validity=Validity(reasons=list(reasons)), log_path=Path("locust.log"),
                        summary={})
    return RoutedRun(label, "http://127.0.0.1:1", result, 0.5)


def test_two_healthy_runs_may_be_compared() -> None:
    require_healthy((_run("baseline", 150), _run("scheduler", 150)), RunHealth())


def test_a_scheduler_answering_with_fast_errors_makes_the_comparison_invalid() -> None:
    runs = (_run("baseline", 200), _run("scheduler", 100, errors=100))
    with pytest.raises(Invalid, match=r"scheduler: error ratio 100/200 = 0\.500 > 0") as info:
        require_healthy(runs, RunHealth())
    assert "baseline" not in info.value.reason
    assert "HTTP 503" in info.value.reason


def test_a_stated_error_ratio_is_tolerated() -> None:
    runs = (_run("baseline", 200), _run("scheduler", 198, errors=2))
    require_healthy(runs, RunHealth(max_error_ratio=0.01))
    with pytest.raises(Invalid):
        require_healthy(runs, RunHealth(max_error_ratio=0.005))


def test_warm_up_errors_do_not_count() -> None:
    require_healthy((_run("baseline", 200, warmup_errors=5), _run("scheduler", 200)),
                    RunHealth())


def test_an_invalid_baseline_run_makes_the_comparison_invalid() -> None:
    runs = (_run("baseline", 200, reasons=("load generator CPU above 90%",)),
            _run("scheduler", 200))
    with pytest.raises(Invalid, match="baseline: run invalid: load generator CPU above 90%"):
        require_healthy(runs, RunHealth())


def test_too_few_successes_make_the_comparison_invalid() -> None:
    runs = (_run("baseline", 0), _run("scheduler", 40))
    with pytest.raises(Invalid) as info:
        require_healthy(runs, RunHealth(min_successes=50))
    assert "baseline: 0 successful requests < the 50 needed" in info.value.reason
    assert "scheduler: 40 successful requests < the 50 needed" in info.value.reason


def test_a_plan_smaller_than_the_minimum_asks_only_for_its_own_requests() -> None:
    plan = LoadPlan(source="plan.yaml", rate=10, requests=60, max_duration_s=60, output_len=8)
    health = RunHealth().for_plan(plan)
    assert health.min_successes == 60
    require_healthy((_run("baseline", 60), _run("scheduler", 60)), health)


def test_an_invalid_verdict_names_the_busiest_processes() -> None:
    busy = replace(_run("scheduler", 200, reasons=("load generator CPU above 90%",)),
                   cpu={"harness": 0.2, "load-generator": 0.95, "envoy": 0.4})
    with pytest.raises(Invalid, match=r"cpu cores: load-generator 0\.95, envoy 0\.40, "
                                      r"harness 0\.20"):
        require_healthy((_run("baseline", 200), busy), RunHealth())


def test_the_health_record_holds_rates_errors_and_cpu_per_process() -> None:
    run = replace(_run("baseline", 8, errors=2), cpu={"sim-0": 0.25})
    record = run.health_record()
    assert record["requests"] == 10 and record["errors"] == 2 and record["errorRatio"] == 0.2
    assert record["cpuCores"] == {"sim-0": 0.25}
    assert {"offeredRate", "achievedRate", "cpuWarning", "valid"} <= set(record)


def test_a_single_run_with_errors_or_a_flag_is_no_evidence() -> None:
    require_clean_run("hot", _run("hot", 60).result, {})
    with pytest.raises(Invalid, match=r"hot: not evidence either way: error ratio 1/61"):
        require_clean_run("hot", _run("hot", 60, errors=1).result, {"envoy": 0.5})
    with pytest.raises(Invalid, match=r"run invalid: achieved rate .*cpu cores: envoy 0\.50"):
        require_clean_run("hot", _run("hot", 60, reasons=("achieved rate low",)).result,
                          {"envoy": 0.5})


def test_a_failed_latency_verdict_on_a_contended_machine_is_invalid_naming_the_cause() -> None:
    from fixtures.comparison import MAX_OTHER_CORES, contention, fail_unless_contended
    from fixtures.outcomes import FAILED, PASSED, Invalid
    from fixtures.process_usage import OTHER

    quiet = {"harness": 0.3, "envoy": 0.4, OTHER: 0.1}
    busy = {"harness": 0.3, "envoy": 0.4, OTHER: MAX_OTHER_CORES + 0.4}
    assert contention([quiet, quiet]) is None
    assert "0.90 cores" in (contention([quiet, busy]) or "")
    with pytest.raises(Invalid, match=r"other processes used 0\.90 cores"):
        fail_unless_contended(FAILED, [quiet, busy], "TTFT ratio 0.98")
    # negative controls: a failure on a quiet machine stays a failure for the caller to
    # report, and a pass on a busy machine stays a pass
    fail_unless_contended(FAILED, [quiet, quiet], "TTFT ratio 0.98")
    fail_unless_contended(PASSED, [busy], "TTFT ratio 0.3")
