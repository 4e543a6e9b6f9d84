"""What helm and the cluster say about the install itself: releases, CRDs, the HF secret."""

from __future__ import annotations

from fixtures.cluster.checks import (
    assert_no_problems,
    helm_release_problems,
    monitoring_crd_problems,
)
from fixtures.cluster.guide import GuideView
from fixtures.support import not_supported


def test_helm_releases_deployed_with_profile_charts(deployed: GuideView) -> None:
    """``helm list -o json``: infra, gaie and ms releases (the current guide: its router
    chart release) deployed at the profile's charts."""
    if deployed.rendered_install:
        not_supported(f"no helm release to check: {deployed.rendered_install}")
    assert_no_problems(helm_release_problems(deployed.helm_releases(), deployed.profile))


def test_monitoring_crds_installed(deployed: GuideView) -> None:
    """Charts render ServiceMonitor/PodMonitor (or GKE PodMonitoring); missing CRDs break it."""
    crds = deployed.profile.monitoring_crds
    if not crds:
        not_supported(f"guide {deployed.profile.version} with {deployed.provider.name} "
                      "renders no monitoring objects (ServiceMonitor/PodMonitor), so it needs "
                      "no monitoring CRDs")
    assert_no_problems(monitoring_crd_problems(deployed.crds_present(crds), crds))


def test_hf_token_secret_present(deployed: GuideView) -> None:
    """``llm-d-hf-token`` exists (read as metadata only: its value never reaches the harness)."""
    problem = deployed.hf_secret_problem()
    assert_no_problems([problem] if problem else [])
