"""The EndpointPickerConfig the EPP reads: the profile's plugins and weights."""

from __future__ import annotations

from fixtures.cluster.checks import assert_no_problems, epp_config_problems
from fixtures.cluster.guide import GuideView


def test_epp_config_plugins_and_weights(deployed: GuideView) -> None:
    profile = deployed.profile
    assert_no_problems(epp_config_problems(deployed.epp_configmap(),
                                    deployed.deployment(profile.epp_deployment), profile))
