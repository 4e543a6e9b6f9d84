"""Deployments rolled out, pods Ready with the expected containers, EPP Service ports."""

from __future__ import annotations

import pytest

from fixtures.cluster.checks import (
    assert_no_problems,
    deployment_problems,
    pod_problems,
    service_port_problems,
)
from fixtures.cluster.guide import GuideView

ROLES = ("epp", "decode")


def _deployment(deployed: GuideView, role: str) -> tuple[str, int | None]:
    profile = deployed.profile
    if role == "epp":
        return profile.epp_deployment, None
    return profile.decode_deployment, profile.decode_replicas


@pytest.mark.parametrize("role", ROLES)
def test_deployment_available(deployed: GuideView, role: str) -> None:
    """Available, observedGeneration current, readyReplicas == replicas."""
    name, replicas = _deployment(deployed, role)
    assert_no_problems(deployment_problems(deployed.deployment(name), name, replicas))


@pytest.mark.parametrize("role", ROLES)
def test_pods_ready_with_expected_containers(deployed: GuideView, role: str) -> None:
    """Every pod Ready, expected containers (and sidecars) ready, no crash loop."""
    profile = deployed.profile
    name, _ = _deployment(deployed, role)
    pods = deployed.pods_of(deployed.deployment(name))
    if role == "epp":  # standalone: the Envoy container beside the EPP must be ready too
        proxy = [profile.proxy.container] if profile.proxy else []
        problems = pod_problems(pods, f"Deployment {name}", [profile.epp_container, *proxy],
                                max_restarts=profile.max_restarts)
    else:
        problems = pod_problems(pods, f"Deployment {name}", profile.decode_containers,
                                profile.decode_sidecars, profile.max_restarts)
    assert_no_problems(problems)


def test_epp_service_ports(deployed: GuideView) -> None:
    """The EPP Service exposes ext_proc (9002) and metrics (9090) (current guide: and
    Envoy's http 80)."""
    profile = deployed.profile
    assert_no_problems(service_port_problems(deployed.service(profile.epp_service),
                                      profile.epp_service, profile.epp_service_ports))
