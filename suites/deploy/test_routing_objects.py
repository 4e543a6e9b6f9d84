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


def test_gateway_programmed_with_address(deployed: GuideView) -> None:
    profile = deployed.profile
    assert_no_problems(gateway_problems(deployed.gateway(), profile.gateway_name,
                                 deployed.provider.expect_gateway_address))


def test_httproute_in_install_namespace(deployed: GuideView) -> None:
    """Catches v0.2's route files, which hardcode a namespace other than the install's."""
    profile = deployed.profile
    route = deployed.route()
    elsewhere = [] if route is not None else deployed.routes_elsewhere()
    assert_no_problems(route_namespace_problems(route, elsewhere, profile.route_name,
                                         deployed.namespace, profile))


def test_httproute_accepted_and_resolved_refs(deployed: GuideView) -> None:
    """Accepted and ResolvedRefs; names the known defect of a pool created after its route."""
    profile = deployed.profile
    assert_no_problems(route_status_problems(deployed.route(), profile.route_name,
                                      profile.gateway_name, deployed.pool()))


def test_httproute_backend_is_the_pool(deployed: GuideView) -> None:
    assert_no_problems(route_backend_problems(deployed.route(), deployed.profile))
