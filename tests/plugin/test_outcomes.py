"""``invalid`` and ``inconclusive`` are outcomes: report.yaml, junit, terminal, exit status."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.outcomes import worst

pytest_plugins = ("pytester",)

INVALID_TEST = '''
from fixtures.outcomes import Invalid

def test_unhealthy_run():
    raise Invalid("generator CPU above 90%")
'''
INCONCLUSIVE_TEST = '''
from fixtures.outcomes import Inconclusive

def test_noisy_ratio():
    raise Inconclusive("ratio interval [0.41, 0.58] straddles 0.5")
'''
PASSING_TEST = '''
def test_fine():
    pass
'''
FAILING_TEST = '''
def test_broken():
    assert False, "the gateway answered 503"
'''


def _run(pytester: pytest.Pytester, tests: dict[str, str],
         *args: str) -> tuple[pytest.RunResult, dict[str, Any], Path]:
    pytester.makepyfile(**tests)
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--report-dir",
                                           str(pytester.path / "reports"), *args)
    latest = pytester.path / "reports" / "latest"
    return result, yaml.safe_load((latest / "report.yaml").read_text()), latest


def _tests(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"].split("::")[-1]: t for t in report["suites"]["harness"]["tests"]}


def test_invalid_run_is_reported_invalid_and_fails_the_exit_status(
        pytester: pytest.Pytester) -> None:
    result, report, latest = _run(pytester, {"test_a": INVALID_TEST, "test_b": PASSING_TEST})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["summary"]["result"] == "invalid"
    assert report["summary"]["invalid"] == 1 and report["summary"]["passed"] == 1
    assert report["summary"]["failed"] == 0
    assert report["suites"]["harness"]["result"] == "invalid"
    test = _tests(report)["test_unhealthy_run"]
    assert test["outcome"] == "invalid"
    assert "generator CPU above 90%" in test["message"]
    assert "1 invalid" in result.stdout.str()
    failure = ET.parse(latest / "junit.xml").getroot().find(".//testcase/failure")
    assert failure is not None
    assert failure.get("message") == "invalid: generator CPU above 90%"


def test_inconclusive_fails_the_exit_status_by_default(pytester: pytest.Pytester) -> None:
    result, report, _ = _run(pytester, {"test_a": INCONCLUSIVE_TEST})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["summary"]["result"] == "inconclusive"
    assert report["summary"]["inconclusive"] == 1
    assert "1 inconclusive" in result.stdout.str()
    assert "straddles 0.5" in _tests(report)["test_noisy_ratio"]["message"]


def test_allow_inconclusive_lets_inconclusive_pass_the_exit_status(
        pytester: pytest.Pytester) -> None:
    result, report, _ = _run(pytester, {"test_a": INCONCLUSIVE_TEST}, "--allow-inconclusive")
    assert result.ret == pytest.ExitCode.OK
    assert report["summary"]["result"] == "inconclusive"  # the report still says so


def test_allow_inconclusive_does_not_let_invalid_pass(pytester: pytest.Pytester) -> None:
    result, report, _ = _run(pytester, {"test_a": INCONCLUSIVE_TEST, "test_b": INVALID_TEST},
                             "--allow-inconclusive")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["summary"]["result"] == "invalid"


def test_a_failure_is_worse_than_invalid_and_inconclusive(pytester: pytest.Pytester) -> None:
    result, report, _ = _run(pytester, {"test_a": INCONCLUSIVE_TEST, "test_b": INVALID_TEST,
                                        "test_c": FAILING_TEST}, "--allow-inconclusive")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["summary"]["result"] == "failed"
    counts = {k: report["summary"][k] for k in ("failed", "invalid", "inconclusive")}
    assert counts == {"failed": 1, "invalid": 1, "inconclusive": 1}


def test_outcomes_cross_xdist_workers(pytester: pytest.Pytester) -> None:
    result, report, _ = _run(pytester, {"test_a": INCONCLUSIVE_TEST, "test_b": INVALID_TEST},
                             "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["summary"]["invalid"] == 1 and report["summary"]["inconclusive"] == 1


def test_worst_outcome_order() -> None:
    assert worst([]) == "passed"
    assert worst(["passed", "skipped", "not-supported"]) == "passed"
    assert worst(["passed", "inconclusive"]) == "inconclusive"
    assert worst(["inconclusive", "invalid"]) == "invalid"
    assert worst(["invalid", "error"]) == "failed"



def test_invalid_raised_by_a_shared_fixture_makes_each_test_using_it_invalid(
        pytester: pytest.Pytester) -> None:
    """The routing comparisons are session fixtures: an unhealthy run is found at setup."""
    fixture_test = '''
import pytest
from fixtures.outcomes import Invalid

@pytest.fixture(scope="session")
def comparison():
    raise Invalid("baseline: error ratio 3/200 = 0.015 > 0")

def test_hit_rate(comparison):
    pass

def test_ttft(comparison):
    pass
'''
    result, report, _ = _run(pytester, {"test_a": fixture_test})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["summary"]["result"] == "invalid"
    assert report["summary"]["invalid"] == 2 and report["summary"]["failed"] == 0
    assert all("error ratio 3/200" in t["message"] for t in _tests(report).values())


def test_a_figure_carries_its_interval_and_outcome_into_the_report(
        pytester: pytest.Pytester) -> None:
    figure_test = '''
from fixtures.outcomes import settle
from fixtures.plugin import Figure
from fixtures.statistics import at_most, bootstrap_percentile_ratio

def test_ratio(evidence):
    ratio = bootstrap_percentile_ratio([1.0] * 40 + [3.0] * 10, [2.0] * 50, 90, seed=1)
    outcome = at_most(ratio, 0.5)
    evidence.figure(Figure("ttft_p90_seconds", 3.0, "s", baseline=2.0, threshold="<= 0.5",
                           interval=ratio.to_dict(), outcome=outcome,
                           trials=[{"trial": 1, "seed": 1, "outcome": "inconclusive"}]))
    settle(outcome, ratio.describe())
'''
    result, report, _ = _run(pytester, {"test_a": figure_test})
    (figure,) = report["locality"]
    assert figure["outcome"] == "failed"
    assert figure["interval"]["samples"] == [50, 50]
    assert figure["interval"]["low"] > 0.5
    assert figure["interval"]["confidence"] == 0.95
    assert figure["trials"] == [{"trial": 1, "seed": 1, "outcome": "inconclusive"}]
    assert report["summary"]["result"] == "failed"
    assert "p90 ratio" in result.stdout.str()
