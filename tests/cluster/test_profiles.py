"""Guide profiles and providers as data, checked against the rendered guide fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fixtures.cluster import ProfileError, profiles, providers
from fixtures.cluster.checks import epp_config_problems, pool_selector_problems
from fixtures.cluster.matrix import combination
from fixtures.cluster.paths import data_dir, guide_fixture_dir
from fixtures.cluster.profiles import available_versions, load_profile
from fixtures.cluster.providers import load_provider

from .conftest import require_guide_fixtures


def test_every_version_and_provider_loads() -> None:
    assert available_versions() == ["v0.2", "v0.3", "v0.4", "v0.5", "current"]
    for version in available_versions()[:-1]:
        for name in ("istio", "kgateway", "gke", "agentgateway"):
            profile = load_profile(version, name)
            assert profile.releases[0].name == "infra-inference-scheduling"
            assert combination(version, name).supported is (name in profile.providers)
    assert load_profile("v0.4", "istio").epp_weights["prefix-cache-scorer"] == 3


@pytest.mark.parametrize("version", ["v0.2", "v0.3"])
@pytest.mark.parametrize("gateway", ["istio", "kgateway", "gke"])
def test_profile_matches_rendered_manifests(version: str, gateway: str) -> None:
    require_guide_fixtures(version)
    profile = load_profile(version, gateway)
    docs = [d for f in ("infra", "gaie", "ms")
            for d in yaml.safe_load_all((guide_fixture_dir(version) / gateway /
                                         f"{f}.yaml").read_text()) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    pool = by_kind[("InferencePool", profile.pool_name)]
    assert pool["apiVersion"] == profile.pool_api_version
    cm = by_kind[("ConfigMap", profile.epp_configmap)]
    dep = by_kind[("Deployment", profile.epp_deployment)]
    assert epp_config_problems(cm, dep, profile) == []
    decode = by_kind[("Deployment", profile.decode_deployment)]
    assert decode["spec"]["replicas"] == profile.decode_replicas
    pod = {"kind": "Pod", "metadata": {"name": "p", **decode["spec"]["template"]["metadata"]},
           "spec": decode["spec"]["template"]["spec"]}
    assert pool_selector_problems(pool, [pod], profile) == []
    svc = by_kind[("Service", profile.epp_service)]
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == profile.epp_service_ports


def test_selector_matching_non_serving_pods_is_named() -> None:
    profile = load_profile("v0.3", "istio")
    pool = {"kind": "InferencePool", "metadata": {"name": "pool", "namespace": "ns"},
            "spec": {"selector": {"llm-d.ai/inferenceServing": "true"}}}
    stray = {"kind": "Pod", "metadata": {"name": "warmup", "namespace": "ns",
                                         "labels": {"llm-d.ai/inferenceServing": "true"}}}
    (problem,) = pool_selector_problems(pool, [stray], profile)
    assert "also matches non-serving pods ['Pod ns/warmup']" in problem


def test_malformed_profile_and_provider_name_file_and_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("profiles", "providers"):
        (tmp_path / kind).mkdir()
    v3 = yaml.safe_load((data_dir("profiles") / "v0.3.yaml").read_text())
    del v3["decode"]["replicas"]
    (tmp_path / "profiles" / "v0.3.yaml").write_text(yaml.safe_dump(v3))
    (tmp_path / "profiles" / "v0.4.yaml").write_text("epp: [unclosed\n")
    istio = yaml.safe_load((data_dir("providers") / "istio.yaml").read_text())
    del istio["reach"]
    (tmp_path / "providers" / "istio.yaml").write_text(yaml.safe_dump(istio))
    monkeypatch.setattr(profiles, "data_dir", lambda name: tmp_path / name)
    monkeypatch.setattr(providers, "data_dir", lambda name: tmp_path / name)
    with pytest.raises(ProfileError, match=r"v0\.3\.yaml: decode\.replicas: required field"):
        load_profile("v0.3", "istio")
    with pytest.raises(ProfileError, match=r"v0\.4\.yaml: cannot read"):
        load_profile("v0.4", "istio")
    with pytest.raises(ProfileError, match=r"istio\.yaml: reach: required field missing"):
        load_provider("istio")
    with pytest.raises(ProfileError, match=r"no gateway provider 'gkee' \(have: \['istio'\]\)"):
        load_provider("gkee")


def test_v05_pool_selector_is_the_guides_match_labels() -> None:
    """The guide's gaie values (v0.5) select on both labels; a selector without
    ``llm-d.ai/guide`` would pass pods of another guide sharing the namespace, and decode
    labels without it would fail ``pool_selector_problems`` on a correct install."""
    profile = load_profile("v0.5", "istio")
    upstream = {"llm-d.ai/inference-serving": "true", "llm-d.ai/guide": "inference-scheduling"}
    assert profile.pool_selector == upstream
    assert upstream.items() <= profile.decode_labels.items()
    pool = {"metadata": {"name": profile.pool_name},
            "spec": {"selector": {"matchLabels": upstream}}}
    pod = {"metadata": {"name": "decode-0", "labels": {**upstream, "llm-d.ai/role": "decode"}}}
    assert pool_selector_problems(pool, [pod], profile) == []
    other = {"metadata": {"name": "other-0", "labels": {"llm-d.ai/inference-serving": "true"}}}
    assert pool_selector_problems(pool, [other], profile), "control: a pod of no guide fails"
