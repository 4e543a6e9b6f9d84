"""Negative controls: each routing and SLO check FAILS on the configuration it exists to catch.

A check that never fails is no evidence. These start the real local stack (Envoy, the EPP,
simulated pods) with a broken scheduler or gateway and judge the load with the suites' own
functions (``fixtures.routing_verdicts``, ``loadtests.slo``), asserting *failed*:

- a prefix-only EPP keeps a hot prompt on one pod however long its queue (balance guard);
  the default config, on the same workload and stack, spreads it (the guard discriminates);
- a random picker scatters prefix groups (stickiness);
- a gateway that delays every request misses the suite's TTFT SLO.

Each run is tens of requests on pods made small on purpose (``HOT_PODS``), so a few prompts
queue and the test stays well under a minute on two cores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.localstack import SimulatorParams
from fixtures.options import HarnessOptions
from fixtures.routing_verdicts import balance_guard, stickiness_guard
from fixtures.stack import Stack
from fixtures.targets.local import LocalTarget
from loadtests.api import LoadResult, LoadSpec, run_load
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

# Two batch slots per pod: a hot prompt at HOT_RATE queues on the pod that holds its prefix,
# which is what the default config's queue scorer reacts to and a prefix-only scorer ignores.
HOT_PODS = SimulatorParams(max_num_seqs=2, num_gpu_blocks=48)
HOT_RATE = 20.0


@pytest.fixture
def stack_with(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a local stack with LocalStackConfig overrides; every one taken down after."""
    targets: list[LocalTarget] = []

    def start(simulator: SimulatorParams | None = None, **overrides: Any) -> Stack:
        target = LocalTarget(HarnessOptions(pods=PODS), tmp_path / f"stack{len(targets)}",
                             simulator=simulator, **overrides)
        targets.append(target)
        return target.up()

    yield start
    for target in targets:
        target.down()


def _shared_prefix_load(stack: Stack, out: Path, groups: int, per_group: int,
                        rate: float) -> LoadResult:
    workload = load_workload({"type": "shared_prefix", "seed": 5, "shared_prefix": {
        "num_groups": groups, "num_prompts_per_group": per_group, "system_prompt_len": 512,
        "question_len": 16, "output_len": 16}}, source="negative control")
    spec = LoadSpec(base_url=stack.gateway_url, model=stack.model, workload=workload,
                    api="completions", stream=True, arrival="poisson", rate=rate, users=32,
                    max_requests=groups * per_group, duration_s=30)
    result = run_load(spec, out, timeout_s=60)
    failed = [s for s in result.samples if not s.ok]
    assert not failed, f"{len(failed)} requests failed (log: {result.log_path})"
    return result


def _hot_prompt_balance(stack_with: Callable[..., Stack], out: Path, config: str) -> Any:
    stack = stack_with(simulator=HOT_PODS, epp_config_text=config)
    result = _shared_prefix_load(stack, out, groups=1, per_group=60, rate=HOT_RATE)
    judged = balance_guard(result.samples, [p.name for p in stack.pods])
    assert judged is not None, f"no request named its pod (log: {result.log_path})"
    return judged[0]


def test_the_broken_configs_are_valid_epp_configs() -> None:
    for text in (PREFIX_ONLY, RANDOM_PICKER):
        load_config(text, "<negative control>")


def test_a_prefix_only_scheduler_fails_the_balance_guard_on_a_hot_prompt(
        stack_with: Callable[..., Stack], tmp_path: Path) -> None:
    guard = _hot_prompt_balance(stack_with, tmp_path / "load", PREFIX_ONLY)
    assert guard.outcome == "failed", guard.message


def test_the_default_scheduler_passes_the_balance_guard_on_the_same_hot_prompt(
        stack_with: Callable[..., Stack], tmp_path: Path) -> None:
    """The positive side of the control above: the guard tells the two configs apart."""
    guard = _hot_prompt_balance(stack_with, tmp_path / "load", DEFAULT_CONFIG)
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
