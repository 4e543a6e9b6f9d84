"""The InferencePool: accepted, selecting exactly the decode pods, on a served port."""

from __future__ import annotations

from fixtures.cluster.checks import (
    assert_no_problems,
    epp_pool_flag_problems,
    pool_parent_problems,
    pool_selector_problems,
    target_port_problems,
)
from fixtures.cluster.guide import GuideView


def test_inferencepool_accepted_by_parent(gateway_mode: GuideView) -> None:
    """Accepted (and ResolvedRefs) by this install's Gateway, current with the pool's spec."""
    profile = gateway_mode.profile
    assert_no_problems(pool_parent_problems(gateway_mode.pool(), profile.pool_name,
                                            profile.gateway_name, gateway_mode.namespace))


def test_pool_selector_matches_decode_pods(deployed: GuideView) -> None:
    """Selector is the profile's, covers every decode pod and no non-serving pod."""
    assert_no_problems(pool_selector_problems(deployed.pool(), deployed.pods(), deployed.profile))


def test_pool_target_port_served(deployed: GuideView) -> None:
    assert_no_problems(target_port_problems(deployed.pool(), deployed.pods(), deployed.profile))


def test_epp_watches_the_pool(deployed: GuideView) -> None:
    """EPP args name this pool, namespace and API group."""
    profile = deployed.profile
    assert_no_problems(epp_pool_flag_problems(deployed.deployment(profile.epp_deployment), profile,
                                       deployed.namespace))
