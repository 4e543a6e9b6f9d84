"""SLO files (data) and verdicts computed from raw samples.

Schema (YAML)::

    apiVersion: lamplighter.llm-d.ai/v1alpha1
    kind: SLO
    metadata: {name: local-interactive}
    spec:
      minSamples: 200          # fewer successful measured (non-warm-up) requests -> invalid
      maxErrorRatio: 0.0       # failed / all measured requests (default 0: none allowed)
      thresholds:              # metric in ttft, tpot, itl, e2e, ntpot; seconds
      - {metric: ttft, percentile: 90, max: 0.5}
      - {metric: itl, percentile: 99, max: 0.05}
      goodput:                 # share of requests meeting every listed bound
        {minRatio: 0.9, ttft: 0.5, tpot: 0.05}   # itl bound applies to a request's largest gap

Unknown keys, wrong types, unknown metrics and percentiles outside (0, 100] raise
``SloError`` naming the file and the field path. A report is ``passed`` True/False only
when the run is valid (see ``loadtests.validity``); otherwise ``passed`` is None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from loadtests.samples import Sample
from loadtests.stats import METRICS, metric_values
from loadtests.validity import Validity

__all__ = [
    "API_VERSION",
    "SloError",
    "SloReport",
    "SloSpec",
    "Threshold",
    "Verdict",
    "evaluate",
    "load_slo",
    "parse_slo",
]

API_VERSION = "lamplighter.llm-d.ai/v1alpha1"


class SloError(ValueError):
    """An SLO file is invalid; the message names the file and the field path."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    percentile: float
    max: float


@dataclass(frozen=True)
class SloSpec:
    name: str
    thresholds: tuple[Threshold, ...]
    min_samples: int = 0  # successful measured requests needed for a verdict
    max_error_ratio: float = 0.0
    goodput_min_ratio: float | None = None
    goodput_bounds: dict[str, float] = field(default_factory=dict)


@dataclass
class Verdict:
    """One checked figure: the metric, its percentile, threshold, measured value and count."""

    metric: str
    percentile: float | None
    threshold: float
    measured: float | None
    samples: int
    passed: bool

    def describe(self) -> str:
        pct = f" p{self.percentile:g}" if self.percentile is not None else ""
        measured = "n/a" if self.measured is None else f"{self.measured:.4g}"
        cmp = ">=" if self.metric == "goodput" else "<="
        mark = "PASS" if self.passed else "FAIL"
        return (
            f"{mark} {self.metric}{pct} = {measured} ({cmp} {self.threshold:g}, n={self.samples})"
        )


@dataclass
class SloReport:
    name: str
    verdicts: list[Verdict]
    valid: bool
    invalid_reasons: list[str]
    passed: bool | None

    @property
    def outcome(self) -> str:
        return "invalid" if self.passed is None else ("passed" if self.passed else "failed")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}


_TOP_KEYS = {"apiVersion", "kind", "metadata", "spec"}
_SPEC_KEYS = {"minSamples", "maxErrorRatio", "thresholds", "goodput"}
_THRESHOLD_KEYS = {"metric", "percentile", "max"}


class _Checker:
    """Field-path-aware type checks; every error names file and path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> SloError:
        return SloError(f"{self.source}: {path}: {message}")

    def mapping(self, value: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key (one of {', '.join(sorted(allowed))})",
                )
        return value

    def number(
        self, value: Any, path: str, lo: float = 0.0, hi: float | None = None, lo_open: bool = False
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number, got {type(value).__name__} {value!r}")
        if value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
            lo_s = f"({lo:g}" if lo_open else f"[{lo:g}"
            hi_s = f"{hi:g}]" if hi is not None else "inf)"
            raise self.fail(path, f"{value!r} outside {lo_s}, {hi_s}")
        return float(value)

    def metric(self, value: Any, path: str) -> str:
        if value not in METRICS:
            raise self.fail(path, f"unknown metric {value!r} (one of {', '.join(METRICS)})")
        return str(value)


def parse_slo(data: Any, source: str = "slo") -> SloSpec:
    """Validate an SLO document (already parsed YAML)."""
    c = _Checker(source)
    top = c.mapping(data, "", _TOP_KEYS)
    if top.get("apiVersion", API_VERSION) != API_VERSION:
        raise c.fail("apiVersion", f"expected {API_VERSION!r}, got {top.get('apiVersion')!r}")
    if top.get("kind", "SLO") != "SLO":
        raise c.fail("kind", f"expected 'SLO', got {top.get('kind')!r}")
    meta = c.mapping(top.get("metadata", {}), "metadata", {"name", "labels", "description"})
    spec = c.mapping(top.get("spec"), "spec", _SPEC_KEYS)
    min_samples = spec.get("minSamples", 0)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 0:
        raise c.fail("spec.minSamples", f"expected a non-negative integer, got {min_samples!r}")
    max_err = c.number(spec.get("maxErrorRatio", 0.0), "spec.maxErrorRatio", 0.0, 1.0)
    raw_thresholds = spec.get("thresholds", [])
    if not isinstance(raw_thresholds, list):
        raise c.fail("spec.thresholds", "expected a list")
    thresholds = []
    for i, item in enumerate(raw_thresholds):
        path = f"spec.thresholds[{i}]"
        t = c.mapping(item, path, _THRESHOLD_KEYS)
        for key in sorted(_THRESHOLD_KEYS - set(t)):
            raise c.fail(f"{path}.{key}", "required")
        thresholds.append(
            Threshold(
                metric=c.metric(t["metric"], f"{path}.metric"),
                percentile=c.number(
                    t["percentile"], f"{path}.percentile", 0.0, 100.0, lo_open=True
                ),
                max=c.number(t["max"], f"{path}.max"),
            )
        )
    goodput_ratio, bounds = None, {}
    if "goodput" in spec:
        g = c.mapping(spec["goodput"], "spec.goodput", {"minRatio", *METRICS})
        if "minRatio" not in g:
            raise c.fail("spec.goodput.minRatio", "required")
        goodput_ratio = c.number(g["minRatio"], "spec.goodput.minRatio", 0.0, 1.0)
        bounds = {m: c.number(g[m], f"spec.goodput.{m}") for m in METRICS if m in g}
        if not bounds:
            raise c.fail("spec.goodput", f"needs at least one bound ({', '.join(METRICS)})")
    name = meta.get("name", source)
    return SloSpec(str(name), tuple(thresholds), min_samples, max_err, goodput_ratio, bounds)


def load_slo(path: Path | str) -> SloSpec:
    """Read and validate an SLO YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SloError(f"{path.name}: cannot read: {exc}") from exc
    return parse_slo(data, path.name)


def _meets(s: Sample, bounds: Mapping[str, float]) -> bool:
    if not s.ok:
        return False
    for metric, bound in bounds.items():
        value = max(s.itl_s, default=0.0) if metric == "itl" else getattr(s, f"{metric}_s")
        if value is None or value > bound:
            return False
    return True


def evaluate(
    spec: SloSpec, samples: Sequence[Sample], validity: Validity | None = None
) -> SloReport:
    """Check every threshold on the measured (non-warm-up) samples; invalid runs get no verdict."""
    measured = [s for s in samples if not s.warmup]
    ok = [s for s in measured if s.ok]
    ratio = (len(measured) - len(ok)) / len(measured) if measured else 0.0
    verdicts = [
        Verdict(
            "error_ratio",
            None,
            spec.max_error_ratio,
            ratio,
            len(measured),
            ratio <= spec.max_error_ratio,
        )
    ]
    for t in spec.thresholds:
        values = metric_values(measured, t.metric)
        value = float(np.percentile(values, t.percentile)) if values else None
        verdicts.append(
            Verdict(
                t.metric,
                t.percentile,
                t.max,
                value,
                len(values),
                value is not None and value <= t.max,
            )
        )
    if spec.goodput_min_ratio is not None:
        good = sum(_meets(s, spec.goodput_bounds) for s in measured)
        ratio = good / len(measured) if measured else 0.0
        verdicts.append(
            Verdict(
                "goodput",
                None,
                spec.goodput_min_ratio,
                ratio,
                len(measured),
                ratio >= spec.goodput_min_ratio,
            )
        )
    reasons = list(validity.reasons) if validity else []
    if len(ok) < spec.min_samples:
        reasons.append(
            f"only {len(ok)} successful measured requests (of {len(measured)}), SLO needs "
            f"minSamples {spec.min_samples}"
        )
    valid = not reasons
    passed = all(v.passed for v in verdicts) if valid else None
    return SloReport(spec.name, verdicts, valid, reasons, passed)
