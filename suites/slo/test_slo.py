"""SLOs: a bounded load run through the gateway, judged by an SLO file (data).

The SLO file is ``--slo`` or ``fixtures/slo/<target>.yaml``; the workload is the plan's
shared-prefix shape sized from the pods' KV capacity. A run Locust flagged (CPU warning,
achieved rate under 95% of target) is reported *invalid* (``fixtures.outcomes.Invalid``): no
evidence either way, so never passed; it fails the run as a failure does. The cores each
process used during the run (harness, load generator, every stack process) go beside the
verdicts in the report and into an invalid verdict's reason.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import httpx
import pytest

from fixtures.comparison import describe_cpu, fail_unless_contended, run_measured
from fixtures.options import HarnessOptions
from fixtures.outcomes import FAILED, Invalid
from fixtures.plans import load_plan, sized_shared_prefix
from fixtures.plugin import Evidence
from fixtures.stack import Stack
from loadtests.api import LoadSpec
from loadtests.slo import evaluate, load_slo

pytestmark = [pytest.mark.load, pytest.mark.slow]

SEED = 424242


def test_latency_slo_through_gateway(stack: Stack, http: httpx.Client,
                                     harness_options: HarnessOptions, run_dir: Path,
                                     evidence: Evidence) -> None:
    slo_path = harness_options.slo_file
    slo = load_slo(slo_path)
    plan = load_plan(harness_options.target, "slo")
    workload = sized_shared_prefix(plan, stack, http, SEED)
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=plan.rate,
                    users=64, max_requests=plan.requests, duration_s=plan.max_duration_s)
    result, cpu = run_measured(spec, run_dir / "load" / "slo", stack,
                               timeout_s=plan.max_duration_s + 60)
    report = evaluate(slo, result.samples, result.validity)
    evidence.slo([{**asdict(v), "slo": report.name, "valid": report.valid,
                   "source": str(slo_path), "cpuCores": cpu} for v in report.verdicts])
    table = "\n".join(v.describe() for v in report.verdicts)
    if not report.valid:
        raise Invalid(f"invalid run (not evidence either way): "
                      f"{'; '.join(report.invalid_reasons)} ({describe_cpu(cpu)})\n{table}")
    if not report.passed:
        fail_unless_contended(FAILED, [cpu], f"SLO {report.name} not met:\n{table}")
    assert report.passed, f"SLO {report.name} ({slo_path}) not met:\n{table}"
