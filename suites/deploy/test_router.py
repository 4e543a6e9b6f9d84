"""The current guide's router: the standalone Envoy beside the EPP, the EPP's flags and
how it discovers the model servers (pool, label selector or file)."""

from __future__ import annotations

from fixtures.cluster.checks import assert_no_problems
from fixtures.cluster.guide import GuideView
from fixtures.cluster.router_checks import (
    epp_discovery_problems,
    epp_flag_problems,
    standalone_proxy_problems,
)
from fixtures.support import not_supported


def test_standalone_envoy_proxy(deployed: GuideView) -> None:
    """Envoy in the EPP pod: container and port, its ConfigMap mounted, ext_proc to the EPP
    on loopback, ORIGINAL_DST on the pick header, and the EPP Service's http port."""
    profile = deployed.profile
    if profile.proxy is None:
        not_supported(f"guide {profile.version} with {deployed.provider.name} has no "
                      "standalone Envoy: its proxy is a Gateway")
    assert_no_problems(standalone_proxy_problems(
        deployed.deployment(profile.epp_deployment), deployed.proxy_configmap(),
        deployed.service(profile.epp_service), profile))


def test_epp_flags(deployed: GuideView) -> None:
    """The flags the profile names (config file, health port, verbosity) as rendered."""
    profile = deployed.profile
    if not profile.epp_flags:
        not_supported(f"profile {profile.version} names no EPP flags beyond the pool flags")
    assert_no_problems(epp_flag_problems(deployed.deployment(profile.epp_deployment), profile))


def test_epp_discovery(deployed: GuideView) -> None:
    """The EPP finds the model servers the profile's way (pool, selector or file)."""
    profile = deployed.profile
    assert_no_problems(epp_discovery_problems(deployed.deployment(profile.epp_deployment),
                                              deployed.epp_configmap(), profile))
