"""Locality runs for the routing suite: the shared-prefix workload and the control.

A comparison whose interval verdict is inconclusive is repeated (both routers, cold caches,
requests pooled) up to ``REPEAT_BUDGET`` more times before the tests answer
(``fixtures.routing_verdicts``).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fixtures.comparison import Comparison, compare_until_decided
from fixtures.options import HarnessOptions
from fixtures.plans import load_plan, sized_shared_prefix
from fixtures.routing_verdicts import REPEAT_BUDGET, control_undecided, ttft_undecided
from fixtures.stack import Stack
from loadtests.workloads import load_workload

SEED = 20251126


@pytest.fixture(scope="session")
def shared_prefix_comparison(stack: Stack, http: httpx.Client, harness_options: HarnessOptions,
                             run_dir: Path) -> Comparison:
    plan = load_plan(harness_options.target, "routing")
    workload = sized_shared_prefix(plan, stack, http, SEED)
    return compare_until_decided(stack, http, workload, plan,
                                 run_dir / "load" / "routing-shared-prefix", ttft_undecided,
                                 REPEAT_BUDGET)


@pytest.fixture(scope="session")
def control_comparison(stack: Stack, http: httpx.Client, harness_options: HarnessOptions,
                       run_dir: Path) -> Comparison:
    plan = load_plan(harness_options.target, "control")
    workload = load_workload({"type": "random", "seed": SEED, "random": {
        "num_prompts": plan.requests,
        "input_len": plan.input_len,
        "output_len": plan.output_len,
    }}, source=plan.source)
    return compare_until_decided(stack, http, workload, plan, run_dir / "load" / "routing-control",
                                 control_undecided, REPEAT_BUDGET)
