"""Status verdicts as strict as GAIE conformance (review F23): the pool's parent entry is THIS
Gateway's (namespace/name), ResolvedRefs counts where reported, a condition older than its
object's spec is stale, and the Gateway names the expected GatewayClass.

Objects are the current guide's rendered ones (``tests/data/guide/current/gateway-istio``)
and v0.3's (``tests/data/guide/v0.3``), with the status a controller would write.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from fixtures.cluster.checks import gateway_problems, pool_parent_problems, route_status_problems
from fixtures.cluster.guide import GuideView
from fixtures.cluster.paths import guide_fixture_dir
from fixtures.cluster.profiles import load_profile
from fixtures.cluster.providers import load_provider

Obj = dict[str, Any]
CURRENT = guide_fixture_dir("current") / "gateway-istio"
NS, GATEWAY, POOL, ROUTE = ("llm-d-optimized-baseline", "llm-d-inference-gateway",
                            "optimized-baseline", "optimized-baseline")


def _rendered(path: str, kind: str) -> Obj:
    obj: Obj = next(d for d in yaml.safe_load_all((CURRENT / path).read_text())
                    if d and d["kind"] == kind)
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("namespace", NS)
    obj["metadata"]["generation"] = 2
    return obj


def _cond(type_: str, status: str = "True", observed: int | None = 2) -> Obj:
    cond: Obj = {"type": type_, "status": status,
                 "reason": type_ if status == "True" else "Bad", "message": "",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
    if observed is not None:
        cond["observedGeneration"] = observed
    return cond


def _parent(name: str = GATEWAY, namespace: str | None = None, *conditions: Obj) -> Obj:
    parent_ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name}
    if namespace is not None:
        parent_ref["namespace"] = namespace
    return {"parentRef": parent_ref,
            "conditions": list(conditions) or [_cond("Accepted"), _cond("ResolvedRefs")]}


def _pool(*parents: Obj) -> Obj:
    pool = _rendered("router.yaml", "InferencePool")
    pool["status"] = {"parents": list(parents)}
    return pool


def _problems(pool: Obj) -> list[str]:
    return pool_parent_problems(pool, POOL, GATEWAY, NS)


# -- the pool's parent is this Gateway ---------------------------------------------------------
def test_a_pool_accepted_only_by_another_gateway_is_a_problem_naming_ours() -> None:
    problems = _problems(_pool(_parent("someone-elses-gateway")))
    assert problems == [f"InferencePool {NS}/{POOL}: status.parents has no entry for Gateway "
                        f"{NS}/{GATEWAY} (entries: Gateway someone-elses-gateway)"]


def test_a_gateway_of_our_name_in_another_namespace_is_not_ours() -> None:
    problems = _problems(_pool(_parent(GATEWAY, "other-team")))
    assert len(problems) == 1 and "no entry for Gateway" in problems[0]
    assert "Gateway other-team/llm-d-inference-gateway" in problems[0]


def test_our_parent_entry_decides_whatever_another_gateway_reports() -> None:
    """Negative controls both ways: a foreign rejection does not fail our accepted pool; a
    foreign acceptance does not rescue our rejection."""
    foreign_rejects = _parent("other", NS, _cond("Accepted", "False"))
    assert _problems(_pool(foreign_rejects, _parent(GATEWAY, NS))) == []
    ours_rejects = _parent(GATEWAY, None, _cond("Accepted", "False"))
    (problem,) = _problems(_pool(_parent("other"), ours_rejects))
    assert problem.startswith(f"InferencePool {NS}/{POOL} status.parents[1] "
                              f"(Gateway {GATEWAY}): conditions[Accepted] is False")


def test_resolved_refs_false_is_a_problem_and_its_absence_is_not() -> None:
    (problem,) = _problems(_pool(_parent(GATEWAY, NS, _cond("Accepted"),
                                         _cond("ResolvedRefs", "False"))))
    assert "conditions[ResolvedRefs] is False" in problem
    assert _problems(_pool(_parent(GATEWAY, NS, _cond("Accepted")))) == []


# -- observedGeneration ------------------------------------------------------------------------
def test_a_pool_condition_older_than_the_pools_spec_is_stale() -> None:
    (problem,) = _problems(_pool(_parent(GATEWAY, NS, _cond("Accepted", observed=1),
                                         _cond("ResolvedRefs"))))
    assert (f"status.parents[0] (Gateway {NS}/{GATEWAY}): conditions[Accepted] is stale: "
            "observedGeneration 1 < metadata.generation 2") in problem
    # controls: current, newer, and unreported generations are not stale
    for observed in (2, 3, None):
        assert _problems(_pool(_parent(GATEWAY, NS, _cond("Accepted", observed=observed)))) == []


def test_a_stale_route_parent_condition_is_a_problem() -> None:
    route = _rendered("router.yaml", "HTTPRoute")
    route["status"] = {"parents": [_parent(GATEWAY, None, _cond("Accepted"),
                                           _cond("ResolvedRefs", observed=1))]}
    (problem,) = route_status_problems(route, ROUTE, GATEWAY, None, NS)
    assert (f"HTTPRoute {NS}/{ROUTE} status.parents[{GATEWAY}]: conditions[ResolvedRefs] is "
            "stale: observedGeneration 1 < metadata.generation 2") in problem
    route["status"]["parents"][0]["conditions"][1]["observedGeneration"] = 2
    assert route_status_problems(route, ROUTE, GATEWAY, None, NS) == []


def test_a_route_accepted_only_by_a_gateway_of_our_name_elsewhere_is_a_problem() -> None:
    route = _rendered("router.yaml", "HTTPRoute")
    route["status"] = {"parents": [_parent(GATEWAY, "other-team")]}
    (problem,) = route_status_problems(route, ROUTE, GATEWAY, None, NS)
    assert f"has no entry for Gateway {NS}/{GATEWAY}" in problem


def _gateway(programmed_observed: int | None = 2) -> Obj:
    gateway = _rendered("gateway.yaml", "Gateway")
    gateway["status"] = {"addresses": [{"type": "IPAddress", "value": "10.0.0.1"}],
                         "conditions": [_cond("Accepted"),
                                        _cond("Programmed", observed=programmed_observed)]}
    return gateway


def test_a_stale_programmed_condition_is_a_problem() -> None:
    (problem,) = gateway_problems(_gateway(programmed_observed=1), GATEWAY, True, "istio")
    assert (f"Gateway {NS}/{GATEWAY}: conditions[Programmed] is stale: observedGeneration 1 "
            "< metadata.generation 2") in problem
    assert gateway_problems(_gateway(), GATEWAY, True, "istio") == []


# -- the GatewayClass --------------------------------------------------------------------------
def test_a_gateway_of_another_class_is_a_problem() -> None:
    (problem,) = gateway_problems(_gateway(), GATEWAY, True, "gke-l7-regional-external-managed")
    assert problem == (f"Gateway {NS}/{GATEWAY}: spec.gatewayClassName is 'istio', expected "
                       "'gke-l7-regional-external-managed' (another controller would program "
                       "it)")
    assert gateway_problems(_gateway(), GATEWAY, True, None) == [], "no class known: any"


@pytest.mark.parametrize(("version", "provider_name", "rendered"), [
    ("current", "istio", "gateway-istio/gateway.yaml"),
    ("current", "agentgateway", "gateway-agentgateway/gateway.yaml"),
    ("current", "gke", "gateway-gke/gateway-gke-l7-regional-external-managed.yaml"),
    ("v0.3", "istio", "istio/infra.yaml"),
    ("v0.3", "kgateway", "kgateway/infra.yaml"),
    ("v0.3", "gke", "gke/infra.yaml"),
])
def test_the_expected_class_is_the_one_each_guide_renders(version: str, provider_name: str,
                                                          rendered: str) -> None:
    """The current guide's agentgateway recipe says ``agentgateway``, the helmfile era's
    ``agentgateway-v2``: the profile's class wins over the provider's."""
    path = guide_fixture_dir(version) / rendered
    gateway = next(d for d in yaml.safe_load_all(path.read_text())
                   if d and d["kind"] == "Gateway")
    view = GuideView(kube=None, runner=None,  # type: ignore[arg-type]
                     profile=load_profile(version, provider_name),
                     provider=load_provider(provider_name), namespace=NS)
    assert view.gateway_class == gateway["spec"]["gatewayClassName"]


def test_the_user_gateway_of_provider_none_may_be_of_any_class() -> None:
    view = GuideView(kube=None, runner=None,  # type: ignore[arg-type]
                     profile=load_profile("current", "none"), provider=load_provider("none"),
                     namespace=NS)
    assert view.gateway_class is None
