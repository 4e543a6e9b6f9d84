"""The installed guide, per provider, for the deploy checks (cluster targets only).

One install per session and provider (``helmfile apply``, the router chart for the current
guide, or, with ``--no-install``, the existing one), owned by the plugin's ``target``
fixture: when any test failed, diagnostics go to ``<run>/diagnostics/<provider>-<worker>/``
BEFORE cleanup; ``--keep-stack`` / ``--keep-on-failure`` skip the cleanup.
"""

from __future__ import annotations

import pytest

from fixtures.cluster.guide import GuideView
from fixtures.cluster.profiles import GuideProfile
from fixtures.options import HarnessOptions
from fixtures.support import not_supported
from fixtures.targets import Target


@pytest.fixture(scope="session")
def deployed(harness_options: HarnessOptions, target: Target) -> GuideView:
    """The guide as installed for the session's provider (shared with the traffic suites)."""
    if harness_options.target == "local":
        not_supported("the local target has no Kubernetes objects to verify")
    reason = target.unsupported_reason()  # type: ignore[attr-defined]
    if reason:
        not_supported(reason)
    view: GuideView = target.deploy()  # type: ignore[attr-defined]
    return view


@pytest.fixture(scope="session")
def profile(deployed: GuideView) -> GuideProfile:
    return deployed.profile



@pytest.fixture(scope="session")
def gateway_mode(deployed: GuideView) -> GuideView:
    """The install, when it has Gateway API objects (Gateway, HTTPRoute, pool parents):
    standalone mode has none and reports those checks not supported."""
    if not deployed.provider.gateway_api:
        not_supported(f"guide {deployed.profile.version} in {deployed.provider.mode} mode has "
                      "no Gateway, HTTPRoute or pool parent: Envoy runs in the EPP pod "
                      "(see test_standalone_envoy_proxy)")
    return deployed
