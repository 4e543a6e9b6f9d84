"""Gateway API objects: the Gateway programmed, the HTTPRoute accepted and pointing at the pool."""

from __future__ import annotations

from fixtures.cluster.checks import (
    assert_no_problems,
    gateway_problems,
    route_backend_problems,
    route_namespace_problems,
    route_status_problems,
)
from fixtures.cluster.guide import GuideView


def test_gateway_programmed_with_address(gateway_mode: GuideView) -> None:
    """Programmed (current with its spec), of the provider's GatewayClass, with an address."""
    profile = gateway_mode.profile
    assert_no_problems(gateway_problems(gateway_mode.gateway(), profile.gateway_name,
                                        gateway_mode.provider.expect_gateway_address,
                                        gateway_mode.gateway_class))


def test_httproute_in_install_namespace(gateway_mode: GuideView) -> None:
    """Catches v0.2's route files, which hardcode a namespace other than the install's."""
    profile = gateway_mode.profile
    route = gateway_mode.route()
    elsewhere = [] if route is not None else gateway_mode.routes_elsewhere()
    assert_no_problems(route_namespace_problems(route, elsewhere, profile.route_name,
                                                gateway_mode.namespace, profile))


def test_httproute_accepted_and_resolved_refs(gateway_mode: GuideView) -> None:
    """Accepted and ResolvedRefs; names the known defect of a pool created after its route."""
    profile = gateway_mode.profile
    assert_no_problems(route_status_problems(gateway_mode.route(), profile.route_name,
                                             profile.gateway_name, gateway_mode.pool(),
                                             gateway_mode.namespace))


def test_httproute_backend_is_the_pool(gateway_mode: GuideView) -> None:
    assert_no_problems(route_backend_problems(gateway_mode.route(), gateway_mode.profile))
