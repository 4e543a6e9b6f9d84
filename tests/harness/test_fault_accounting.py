"""Fault accounting from raw samples: every request is succeeded, failed or lost, once."""

from __future__ import annotations

import pytest

from fixtures.fault_accounting import RECOVERY_STREAK, FaultWindow, account, classify
from loadtests.samples import Sample


def sample(start: float, status: int = 200, error: str | None = None, pod: str | None = "a",
           e2e: float = 0.1) -> Sample:
    return Sample(request_id=int(start * 1000), group="g", api="completions", stream=True,
                  url="/v1/completions", start=start, e2e_s=e2e, status=status, error=error,
                  pod=pod)


def test_a_timeout_is_lost_an_http_error_is_failed_and_a_2xx_succeeded() -> None:
    assert classify(sample(0)) == "succeeded"
    assert classify(sample(0, status=503, error="HTTP 503: no healthy upstream")) == "503"
    assert classify(sample(0, status=0, error="timeout: timed out")) == "lost"
    assert classify(sample(0, status=0, error="cancelled: user stopped mid-request")) == "lost"
    assert classify(sample(0, status=200, error="ConnectionResetError: reset")) == (
        "client ConnectionResetError")


def test_requests_before_the_fault_are_not_counted() -> None:
    samples = [sample(1.0, status=500, error="HTTP 500: x"), sample(10.0), sample(11.0)]
    result = account(FaultWindow("f", "x", injected_at=5.0), samples)
    assert (result.sent, result.succeeded, result.failed, result.lost) == (2, 2, 0, 0)


def test_requests_from_the_next_faults_injection_on_are_not_counted() -> None:
    samples = [sample(5.0), sample(9.0, status=503, error="HTTP 503: next fault")]
    result = account(FaultWindow("f", "x", injected_at=5.0, observed_until=9.0), samples)
    assert (result.sent, result.succeeded, result.failed) == (1, 1, 0)


def test_detection_is_the_last_failure_before_the_fault_is_undone() -> None:
    samples = [sample(10.0, status=503, error="HTTP 503: reset", pod=None),
               sample(10.5, pod="b"),
               sample(11.2, status=503, error="HTTP 503: reset", pod=None),
               sample(12.0, pod="b"),
               sample(30.0, status=503, error="HTTP 503: later", pod=None)]
    result = account(FaultWindow("kill", "SIGKILL a", 10.0, restored_at=20.0, pod="a"), samples)
    assert result.time_to_detect_s == pytest.approx(1.2)
    assert result.failed_by_status == {"503": 3}


def test_nothing_failed_means_detected_at_once() -> None:
    result = account(FaultWindow("slow", "x", 0.0, restored_at=5.0), [sample(1.0), sample(2.0)])
    assert result.time_to_detect_s == 0.0


def test_recovery_of_a_pod_is_its_first_served_request_after_restore() -> None:
    samples = [sample(21.0, pod="b"), sample(22.0, pod="a", e2e=0.5), sample(23.0, pod="a")]
    result = account(FaultWindow("kill", "x", 10.0, restored_at=20.0, pod="a"), samples)
    assert result.time_to_recover_s == 2.5


def test_a_pod_that_never_serves_again_has_no_recovery_and_a_note() -> None:
    result = account(FaultWindow("kill", "x", 10.0, restored_at=20.0, pod="a"),
                     [sample(21.0, pod="b")])
    assert result.time_to_recover_s is None
    assert "served no request" in result.notes[0]


def test_recovery_without_a_pod_needs_a_streak_of_successes() -> None:
    fail = {"status": 503, "error": "HTTP 503: x", "pod": None}
    samples = [sample(20.5, **fail), sample(21.0), sample(21.5, **fail)]  # type: ignore[arg-type]
    samples += [sample(22.0 + i) for i in range(RECOVERY_STREAK)]
    result = account(FaultWindow("epp", "x", 10.0, restored_at=20.0), samples)
    assert result.time_to_recover_s == pytest.approx(2.1)


def test_no_streak_means_not_recovered() -> None:
    samples = [sample(21.0), sample(22.0, status=503, error="HTTP 503: x")]
    result = account(FaultWindow("epp", "x", 10.0, restored_at=20.0), samples)
    assert result.time_to_recover_s is None and result.notes


def test_report_dict_names_every_count() -> None:
    result = account(FaultWindow("f", "did x", 0.0), [sample(1.0),
                     sample(2.0, status=0, error="timeout: timed out")])
    data = result.as_dict()
    assert data["requests"] == {"sent": 2, "succeeded": 1, "failed": 0, "lost": 1}
    assert data["injected"] == "did x"
