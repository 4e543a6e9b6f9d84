"""Folding setup/call/teardown reports into one outcome per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.fault_accounting import FaultAccount
from fixtures.report import PROPERTY_KEY, RunReport, summary_lines

NODE = "suites/routing/test_x.py::test_y"
PHASES = ("setup", "call", "teardown")


def _fold(tmp_path: Path, *phases: tuple[str, str, str]) -> RunReport:
    report = RunReport(run_dir=tmp_path, target="local", gateway="local")
    for when, outcome, text in phases:
        skip = text if outcome == "skipped" else ""
        report.add_phase(NODE, when, outcome, 0.5, "" if skip else text, skip, ())
    return report


@pytest.mark.parametrize(("phases", "expected"), [
    ((("setup", "passed", ""), ("call", "passed", ""), ("teardown", "passed", "")), "passed"),
    ((("setup", "passed", ""), ("call", "failed", "E boom"), ("teardown", "passed", "")),
     "failed"),
    ((("setup", "failed", "E no stack"), ("teardown", "passed", "")), "error"),
    ((("setup", "passed", ""), ("call", "passed", ""), ("teardown", "failed", "E leak")),
     "error"),
    ((("setup", "passed", ""), ("call", "failed", "E boom"), ("teardown", "failed", "E leak")),
     "failed"),
    ((("setup", "skipped", "no GPU"), ("teardown", "passed", "")), "skipped"),
    ((("setup", "passed", ""), ("call", "skipped", "not supported: no kube"),
      ("teardown", "passed", "")), "not-supported"),
    ((("setup", "passed", ""), ("call", "skipped", "no GPU"), ("teardown", "failed", "E x")),
     "error"),
])
def test_phases_fold_into_one_outcome(tmp_path: Path, phases: tuple[tuple[str, str, str], ...],
                                      expected: str) -> None:
    outcome = _fold(tmp_path, *phases).outcomes[NODE]
    assert outcome.outcome == expected, [p[:2] for p in phases]
    assert outcome.duration_s == pytest.approx(0.5 * len(phases))


def test_the_first_failure_message_is_kept(tmp_path: Path) -> None:
    report = _fold(tmp_path, ("setup", "passed", ""), ("call", "failed", "x\nE call broke"),
                   ("teardown", "failed", "E teardown broke"))
    assert report.outcomes[NODE].message == "call broke"


def test_evidence_is_taken_once_from_teardown(tmp_path: Path) -> None:
    report = RunReport(run_dir=tmp_path, target="local", gateway="local")
    figure = (PROPERTY_KEY, json.dumps({"kind": "figure", "figure": {"name": "hit", "value": 1}}))
    slo = (PROPERTY_KEY, json.dumps({"kind": "slo", "verdicts": [{"metric": "ttft"}]}))
    for when in PHASES:  # user_properties accumulate: every phase report carries them
        report.add_phase(NODE, when, "passed", 0.0, "", "", [figure, slo, ("other", "x")])
    assert report.figures == [{"name": "hit", "value": 1}]
    assert report.slo_verdicts == [{"metric": "ttft"}]
    assert report.result() == "passed"


def test_a_fault_account_reaches_the_faults_section_and_the_summary(tmp_path: Path) -> None:
    report = RunReport(run_dir=tmp_path, target="local", gateway="local")
    account = FaultAccount("pod-errors", "failure_rate 1 on sim-0", sent=40, succeeded=30,
                           failed=10, lost=0, failed_by_status={"503": 10},
                           time_to_detect_s=2.5, time_to_recover_s=0.31)
    fault = (PROPERTY_KEY, json.dumps({"kind": "fault", "fault": {
        "name": account.name, **account.as_dict(), "test": NODE}}))
    for when in PHASES:
        report.add_phase(NODE, when, "passed", 0.0, "", "", [fault])
    doc = report.to_dict([])
    assert doc["faults"] == [{"name": "pod-errors", **account.as_dict(), "test": NODE}]
    assert doc["faults"][0]["requests"] == {"sent": 40, "succeeded": 30, "failed": 10,
                                            "lost": 0}
    assert ("  fault pod-errors: sent 40, succeeded 30, failed 10 (503: 10), lost 0"
            "  detect 2.5 s  recover 0.31 s") in summary_lines(doc)
    assert RunReport(run_dir=tmp_path, target="local", gateway="local").to_dict([])[
        "faults"] == []  # control: no fault recorded, an empty section


def test_a_known_failure_is_counted_apart_with_its_reason(tmp_path: Path) -> None:
    """pytest.xfail with a measured cause: neither passed nor a plain skip; the summary names
    it and the run's result is not made worse (nothing failed unexpectedly)."""
    report = RunReport(run_dir=tmp_path, target="kwok", gateway="standalone")
    report.add_phase(NODE, "setup", "passed", 0.1, "", "", ())
    report.add_phase(NODE, "call", "skipped", 0.1, "", "known: slow pod kept 24%", (),
                     "known-failure")
    report.add_phase(NODE, "teardown", "passed", 0.1, "", "", ())
    outcome = report.outcomes[NODE]
    assert (outcome.outcome, outcome.message) == ("known-failure", "known: slow pod kept 24%")
    doc = report.to_dict([])
    suite = doc["suites"]["routing"]
    assert suite["knownFailure"] == 1 and suite["skipped"] == 0 and suite["passed"] == 0
    lines = summary_lines(doc)
    assert any("known failure 1" in line for line in lines)
    assert any("known: slow pod kept 24%" in line for line in lines)
