from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loadtests.samples import Sample
from loadtests.slo import SloError, evaluate, load_slo, parse_slo
from loadtests.validity import Validity

EXAMPLE = Path(__file__).resolve().parents[2] / "loadtests" / "examples" / "slo.yaml"


def _doc() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def _samples(n: int, ttft: float, fail: int = 0) -> list[Sample]:
    out = []
    for i in range(n):
        s = Sample(
            i,
            "g",
            "completions",
            True,
            "/v1/completions",
            0.0,
            ttft_s=ttft,
            tpot_s=0.01,
            itl_s=[0.01, 0.02],
            e2e_s=ttft + 0.02,
            status=200,
        )
        if i < fail:
            s.status, s.error = 500, "HTTP 500"
        out.append(s)
    return out


def test_example_file_loads() -> None:
    spec = load_slo(EXAMPLE)
    assert spec.name == "local-interactive" and spec.min_samples == 200
    assert [t.metric for t in spec.thresholds] == ["ttft", "itl"]
    assert spec.goodput_bounds == {"ttft": 0.5, "tpot": 0.05}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["spec"]["thresholds"][1].update(metric="ttf"),
            "slo.yaml: spec.thresholds[1].metric: unknown metric 'ttf' "
            "(one of ttft, tpot, itl, e2e, ntpot)",
        ),
        (
            lambda d: d["spec"]["thresholds"][0].update(percentile=0),
            "spec.thresholds[0].percentile",
        ),
        (
            lambda d: d["spec"]["thresholds"][0].update(percentile=101),
            "spec.thresholds[0].percentile",
        ),
        (lambda d: d["spec"]["thresholds"][0].update(max="fast"), "spec.thresholds[0].max"),
        (lambda d: d["spec"]["thresholds"][0].pop("max"), "spec.thresholds[0].max: required"),
        (lambda d: d["spec"].update(minSample=3), "spec.minSample: unknown key"),
        (lambda d: d["spec"].update(maxErrorRatio=2), "spec.maxErrorRatio"),
        (lambda d: d["spec"]["goodput"].update(ttfx=1), "spec.goodput.ttfx"),
        (lambda d: d.update(kind="Slo"), "kind"),
    ],
)
def test_schema_errors_name_file_and_field(tmp_path: Path, mutate, message: str) -> None:
    doc = _doc()
    mutate(doc)
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SloError) as err:
        load_slo(path)
    assert message in str(err.value)


def test_pass_fail_invalid() -> None:
    spec = parse_slo(_doc())
    ok = evaluate(spec, _samples(250, 0.1), Validity())
    assert ok.passed is True and ok.outcome == "passed"
    ttft = next(v for v in ok.verdicts if v.metric == "ttft")
    assert ttft.samples == 250 and ttft.measured == pytest.approx(0.1)
    slow = evaluate(spec, _samples(250, 0.6), Validity())
    assert slow.passed is False
    assert {v.metric for v in slow.verdicts if not v.passed} == {"ttft", "goodput"}
    errors = evaluate(spec, _samples(250, 0.1, fail=1), Validity())
    assert errors.passed is False
    few = evaluate(spec, _samples(10, 0.1), Validity())
    assert few.passed is None and "minSamples 200" in few.invalid_reasons[0]
    cpu = evaluate(spec, _samples(250, 0.1), Validity(cpu_warning=True, reasons=["cpu"]))
    assert cpu.passed is None and cpu.outcome == "invalid"


def test_warmup_samples_are_excluded() -> None:
    spec = parse_slo(_doc())
    late = Sample(999, "g", "completions", True, "/", 0.0, ttft_s=9.0, status=200, warmup=True)
    samples = [*_samples(250, 0.1), late]
    assert evaluate(spec, samples, Validity()).passed is True


def test_max_error_ratio_defaults_to_zero() -> None:
    doc = _doc()
    doc["spec"].pop("maxErrorRatio", None)
    spec = parse_slo(doc)
    assert spec.max_error_ratio == 0.0
    report = evaluate(spec, _samples(250, 0.1, fail=1), Validity())
    assert report.outcome == "failed"
    error_ratio = next(v for v in report.verdicts if v.metric == "error_ratio")
    assert not error_ratio.passed and error_ratio.measured == pytest.approx(1 / 250)


def test_min_samples_counts_successes_only() -> None:
    spec = parse_slo(_doc())  # minSamples 200
    report = evaluate(spec, _samples(250, 0.1, fail=100), Validity())
    assert report.outcome == "invalid"
    assert "only 150 successful measured requests (of 250)" in report.invalid_reasons[0]
