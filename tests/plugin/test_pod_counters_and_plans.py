"""Hit rate from pod counters, and load-plan sizing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cluster.profiles import available_versions, load_profile
from fixtures.locality import pod_hit_rate
from fixtures.plans import LoadPlan, PlanError, load_plan, shared_prefix_groups
from fixtures.podmetrics import MetricsSnapshot
from fixtures.support import NOT_SUPPORTED_PREFIX
from simulator.config import EngineConfig


def _counters(hits: float, queries: float) -> MetricsSnapshot:
    return MetricsSnapshot.parse(
        "# TYPE vllm:prefix_cache_hits counter\n"
        f'vllm:prefix_cache_hits_total{{model_name="m"}} {hits}\n'
        "# TYPE vllm:prefix_cache_queries counter\n"
        f'vllm:prefix_cache_queries_total{{model_name="m"}} {queries}\n')


def test_pod_hit_rate_is_token_weighted_over_the_pool() -> None:
    before = {"a": _counters(10, 100), "b": _counters(0, 0)}
    after = {"a": _counters(90, 200), "b": _counters(0, 300)}
    assert pod_hit_rate(before, after) == pytest.approx(80 / 400)


def test_pod_hit_rate_refuses_an_idle_run() -> None:
    with pytest.raises(ValueError, match="no prefix-cache queries"):
        pod_hit_rate({"a": _counters(1, 1)}, {"a": _counters(1, 1)})


def test_groups_exceed_one_pod_and_fit_the_pool() -> None:
    plan = LoadPlan("t", rate=1, requests=10, max_duration_s=10, output_len=1,
                    system_prompt_len=1024, kv_oversubscription=2.5)
    assert shared_prefix_groups(plan, pod_capacity_tokens=8192, pods=4) == 20
    with pytest.raises(pytest.skip.Exception,
                       match=f"^{NOT_SUPPORTED_PREFIX}2 decode replicas are too few"):
        shared_prefix_groups(plan, pod_capacity_tokens=8192, pods=2)


def test_a_malformed_plan_is_an_error_not_a_skip() -> None:
    plan = LoadPlan("t", rate=1, requests=10, max_duration_s=10, output_len=1,
                    system_prompt_len=1024, kv_oversubscription=1.0)
    with pytest.raises(PlanError, match="kv_oversubscription > 1"):
        shared_prefix_groups(plan, pod_capacity_tokens=8192, pods=8)


SIMULATOR_CAPACITY = EngineConfig().num_gpu_blocks * EngineConfig().block_size


@pytest.mark.parametrize("target", ["kind", "cluster"])
@pytest.mark.parametrize("section", ["routing", "slo"])
def test_cluster_plans_fit_every_profiles_replica_count(target: str, section: str) -> None:
    """Every guide version's decode replica count (2 for v0.2-v0.4) must fit the plan, at the
    simulator's KV capacity (kind) and at a GPU's (larger): else every run is not supported."""
    plan = load_plan(target, section)
    replicas = {load_profile(v, "istio").decode_replicas for v in available_versions()}
    assert min(replicas) == 2
    for pods in sorted(replicas):
        for capacity in (SIMULATOR_CAPACITY, 16 * SIMULATOR_CAPACITY):
            try:
                groups = shared_prefix_groups(plan, capacity, pods)
            except pytest.skip.Exception as e:
                pytest.fail(f"{pods} replicas, {capacity} tokens each: {e}")
            assert groups * plan.system_prompt_len > capacity, "must exceed one pod's cache"


@pytest.mark.parametrize("pods", [1, 2, 3])
def test_local_plans_on_fewer_than_four_pods_are_not_supported(pods: int) -> None:
    for section in ("routing", "slo"):
        with pytest.raises(pytest.skip.Exception,
                           match=f"^{NOT_SUPPORTED_PREFIX}{pods} decode replicas are too few"):
            shared_prefix_groups(load_plan("local", section), SIMULATOR_CAPACITY, pods)
    assert shared_prefix_groups(load_plan("local", "routing"), SIMULATOR_CAPACITY, 4) > 0


def test_bad_plan_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "local.yaml").write_text("routing: {rate: 1, requests: 2, max_duration_s: 3, "
                                         "output_len: 4, sytem_prompt_len: 5}\n")
    with pytest.raises(PlanError, match=r"routing\.sytem_prompt_len: unknown field"):
        load_plan("local", "routing", plans_dir=tmp_path)


def test_shipped_plans_load() -> None:
    for target in ("local", "kind", "kwok", "cluster"):
        for section in ("routing", "control", "slo"):
            assert load_plan(target, section).requests > 0


def test_a_plan_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "local.yaml").write_text("routing: {rate: 1\n")
    with pytest.raises(PlanError, match=r"local\.yaml: not valid YAML"):
        load_plan("local", "routing", plans_dir=tmp_path)
