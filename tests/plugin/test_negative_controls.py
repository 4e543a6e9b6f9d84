"""Negative controls: each routing and SLO check FAILS on the configuration it exists to catch.

A check that never fails is no evidence. These start the real local stack (Envoy, the EPP,
simulated pods) with a broken scheduler or gateway and judge the load with the suites' own
functions (``fixtures.routing_verdicts``, ``loadtests.slo``), asserting *failed*:

- a prefix-only EPP keeps the routing suite's hot prompt (``fixtures.hot_prompt``: one
  prefix, faster than the pod holding it can serve) on one pod however long its queue
  (balance guard); the default config, on the same run, spreads it (measured max pod share
  1.0 against 0.33-0.36): the guard tells the two apart;
- a random picker scatters prefix groups (stickiness);
- a gateway that delays every request 400 ms misses the suite's TTFT SLO.

Each run is tens of requests on its own 4-pod stack, well under a minute on two cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.comparison import require_clean_run, run_measured
from fixtures.hot_prompt import hot_prompt_run
from fixtures.options import HarnessOptions
from fixtures.routing_verdicts import Guard, balance_guard, stickiness_guard
from fixtures.stack import Stack
from fixtures.targets.local import LocalTarget
from loadtests.api import LoadResult, LoadSpec
from loadtests.slo import evaluate, load_slo
from loadtests.workloads import load_workload
from scheduler_ref.config import DEFAULT_CONFIG, load_config

pytestmark = [pytest.mark.timeout(120), pytest.mark.load]

PODS = 4
PREFIX_ONLY = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
"""

RANDOM_PICKER = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: random-picker
"""


@pytest.fixture
def stack_with(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a local stack with LocalStackConfig overrides; every one taken down after
    (each one's down() runs even when another's raises)."""
    started = itertools.count()
    with contextlib.ExitStack() as cleanup:

        def start(**overrides: Any) -> Stack:
            target = LocalTarget(HarnessOptions(pods=PODS), tmp_path / f"stack{next(started)}",
                                 **overrides)
            cleanup.callback(target.down)
            return target.up()

        yield start


def _shared_prefix_load(stack: Stack, out: Path, groups: int, per_group: int,
                        rate: float) -> LoadResult:
    workload = load_workload({"type": "shared_prefix", "seed": 5, "shared_prefix": {
        "num_groups": groups, "num_prompts_per_group": per_group, "system_prompt_len": 512,
        "question_len": 16, "output_len": 16}}, source="negative control")
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=rate, users=32,
                    max_requests=groups * per_group, duration_s=30)
    result, cpu = run_measured(spec, out, stack, timeout_s=60)
    require_clean_run("negative-control run", result, cpu)  # a control needs evidence too
    return result


def _hot_prompt_balance(stack: Stack, out: Path) -> Guard:
    with httpx.Client(timeout=30) as http:
        _, result = hot_prompt_run(stack, http, out)
    judged = balance_guard(result.samples, [p.name for p in stack.pods])
    assert judged is not None, f"no request named its pod (log: {result.log_path})"
    return judged[0]


def test_the_broken_configs_are_valid_epp_configs() -> None:
    for text in (PREFIX_ONLY, RANDOM_PICKER):
        load_config(text, "<negative control>")


def test_a_prefix_only_scheduler_fails_the_balance_guard_on_a_hot_prompt(
        stack_with: Callable[..., Stack], tmp_path: Path) -> None:
    """The routing suite's hot-prompt run (``fixtures.hot_prompt``), on a prefix-only EPP."""
    guard = _hot_prompt_balance(stack_with(epp_config_text=PREFIX_ONLY), tmp_path / "load")
    assert guard.outcome == "failed", guard.message


def test_the_default_scheduler_passes_the_balance_guard_on_the_same_hot_prompt(
        stack_with: Callable[..., Stack], tmp_path: Path) -> None:
    """The positive side of the control above: the guard tells the two configs apart."""
    guard = _hot_prompt_balance(stack_with(epp_config_text=DEFAULT_CONFIG), tmp_path / "load")
    assert guard.outcome == "passed", guard.message


def test_a_random_picker_fails_the_stickiness_check(stack_with: Callable[..., Stack],
                                                   tmp_path: Path) -> None:
    stack = stack_with(epp_config_text=RANDOM_PICKER)
    result = _shared_prefix_load(stack, tmp_path / "load", groups=8, per_group=6, rate=12.0)
    judged = stickiness_guard(result.samples)
    assert judged is not None, f"no request named its pod (log: {result.log_path})"
    assert judged[0].outcome == "failed", judged[0].message


def test_a_slow_gateway_fails_the_slo(stack_with: Callable[..., Stack], tmp_path: Path) -> None:
    """Envoy's fault filter delays every request 400 ms: the suite's TTFT p90 <= 250 ms fails."""
    suite_slo = load_slo(Path(__file__).resolve().parents[2] / "fixtures" / "slo" / "local.yaml")
    slo = dataclasses.replace(suite_slo, min_samples=30)  # the suite's bounds, a short run
    stack = stack_with(gateway_delay_ms=400.0)
    result = _shared_prefix_load(stack, tmp_path / "load", groups=4, per_group=10, rate=8.0)
    report = evaluate(slo, result.samples, result.validity)
    table = "\n".join(v.describe() for v in report.verdicts)
    assert report.valid, report.invalid_reasons
    assert report.outcome == "failed", table
    assert any(not v.passed for v in report.verdicts if v.metric == "ttft"), table
