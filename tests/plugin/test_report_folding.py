"""Folding setup/call/teardown reports into one outcome per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.report import PROPERTY_KEY, RunReport

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
