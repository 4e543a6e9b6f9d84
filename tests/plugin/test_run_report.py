"""The run report: written even when tests fail, with outcomes, figures and SLO verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest_plugins = ("pytester",)

SUITE = '''
import pytest
from fixtures.plugin import Figure
from fixtures.support import not_supported

def test_ok(evidence):
    evidence.figure(Figure("hit_rate", 0.9, "ratio", baseline=0.3, samples=100))
    evidence.slo([{"metric": "ttft", "percentile": 90, "threshold": 0.5, "measured": 0.2,
                   "samples": 100, "passed": True}])

def test_broken():
    assert 1 == 2, "the gateway answered 503"

def test_unsupported():
    not_supported("needs Kubernetes objects")

def test_skipped():
    pytest.skip("no GPU")
'''


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--report-dir",
                                           str(pytester.path / "reports"), *args)
    return result, pytester.path / "reports" / "latest"


def test_report_written_when_tests_fail(pytester: pytest.Pytester) -> None:
    result, latest = _run(pytester)
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    report = yaml.safe_load((latest / "report.yaml").read_text())
    assert report["apiVersion"] == "lamplighter.llm-d.ai/v1alpha1"
    assert report["kind"] == "ConformanceReport"
    assert report["summary"]["result"] == "failed"
    counts = {k: report["summary"][k] for k in ("passed", "failed", "skipped", "notSupported")}
    assert counts == {"passed": 1, "failed": 1, "skipped": 1, "notSupported": 1}
    tests = {t["name"].split("::")[-1]: t for t in report["suites"]["harness"]["tests"]}
    assert tests["test_broken"]["outcome"] == "failed"
    assert "the gateway answered 503" in tests["test_broken"]["message"]
    assert tests["test_unsupported"]["outcome"] == "not-supported"
    assert report["locality"][0]["name"] == "hit_rate"
    assert report["locality"][0]["baseline"] == 0.3
    assert report["slo"][0]["measured"] == 0.2 and report["slo"][0]["samples"] == 100
    assert (latest / "junit.xml").is_file()
    assert (latest / "allure-results").is_dir()


def test_report_collects_across_xdist_workers(pytester: pytest.Pytester) -> None:
    result, latest = _run(pytester, "-n", "2")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    report = yaml.safe_load((latest / "report.yaml").read_text())
    assert report["locality"][0]["value"] == 0.9
    assert report["summary"]["notSupported"] == 1


def test_provider_markers_select_parametrized_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_providers='''
def test_with_provider(provider):
    assert provider
''')
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--target", "cluster",
                                           "-m", "gke", "--collect-only", "-q")
    out = result.stdout.str()
    assert "test_with_provider[gke]" in out
    assert "test_with_provider[istio]" not in out


def test_a_module_that_cannot_be_collected_fails_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken_import="import no_such_module_here\n")
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--report-dir",
                                           str(pytester.path / "reports"))
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's word for collection errors
    report = yaml.safe_load((pytester.path / "reports" / "latest" / "report.yaml").read_text())
    assert report["summary"]["result"] == "failed"
    (broken,) = report["suites"]["harness"]["tests"]
    assert broken["outcome"] == "error"
    assert "no_such_module_here" in broken["message"]

