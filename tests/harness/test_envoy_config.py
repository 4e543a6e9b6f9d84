"""The local Envoy bootstrap keeps what the no-Kubernetes guide's envoy.yaml sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.envoy.config import EnvoyGatewayConfig, render

GUIDE = Path(__file__).resolve().parents[1] / "data" / "guide" / "current" / "no-kubernetes"


def _config(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(gateway_port=1, baseline_port=2, admin_port=3,
                                  epp_address="127.0.0.1:4", pods=("127.0.0.1:5",
                                                                   "127.0.0.1:6"))
    values.update(overrides)
    return render(EnvoyGatewayConfig(**values))


def _filters(bootstrap: dict[str, Any], listener: str) -> list[dict[str, Any]]:
    found = [x for x in bootstrap["static_resources"]["listeners"] if x["name"] == listener]
    manager = found[0]["filter_chains"][0]["filters"][0]["typed_config"]
    return list(manager["http_filters"])


def _ext_proc(bootstrap: dict[str, Any]) -> dict[str, Any]:
    return next(f["typed_config"] for f in _filters(bootstrap, "gateway")
                if f["name"] == "envoy.filters.http.ext_proc")


def _guide_ext_proc() -> dict[str, Any]:
    guide = yaml.safe_load((GUIDE / "envoy.yaml").read_text())
    manager = guide["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return next(f["typed_config"] for f in manager["typed_config"]["http_filters"]
                if f["name"] == "envoy.filters.http.ext_proc")


def test_ext_proc_processing_modes_and_timeouts_match_the_guide() -> None:
    ours, guide = _ext_proc(_config()), _guide_ext_proc()
    assert ours["processing_mode"] == guide["processing_mode"]
    assert ours["message_timeout"] == guide["message_timeout"]
    assert ours["grpc_service"]["timeout"] == guide["grpc_service"]["timeout"]
    assert "failure_mode_allow" not in ours and "failure_mode_allow" not in guide


def test_fail_open_sets_failure_mode_allow_as_the_router_charts() -> None:
    assert _ext_proc(_config(failure_mode="FailOpen"))["failure_mode_allow"] is True


def test_routing_follows_the_destination_header_the_epp_sets() -> None:
    clusters = {c["name"]: c for c in _config()["static_resources"]["clusters"]}
    original = clusters["original_destination_cluster"]
    assert original["type"] == "ORIGINAL_DST"
    assert original["original_dst_lb_config"] == {
        "use_http_header": True, "http_header_name": "x-gateway-destination-endpoint"}
    health = clusters["ext_proc"]["health_checks"][0]["grpc_health_check"]
    assert health["service_name"] == "envoy.service.ext_proc.v3.ExternalProcessor"


def test_the_baseline_has_no_epp_and_round_robins_every_pod() -> None:
    bootstrap = _config()
    assert [f["name"] for f in _filters(bootstrap, "baseline")] == ["envoy.filters.http.router"]
    pods = next(c for c in bootstrap["static_resources"]["clusters"]
                if c["name"] == "baseline_pods")
    assert pods["lb_policy"] == "ROUND_ROBIN"
    assert len(pods["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2


def test_tls_to_the_epp_only_when_asked() -> None:
    def ext_proc_cluster(bootstrap: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in bootstrap["static_resources"]["clusters"]
                    if c["name"] == "ext_proc")

    assert "transport_socket" not in ext_proc_cluster(_config())
    assert ext_proc_cluster(_config(epp_tls=True))["transport_socket"]["name"] == (
        "envoy.transport_sockets.tls")


def test_a_delay_adds_a_fault_filter_before_the_epp_on_the_gateway_only() -> None:
    bootstrap = _config(delay_ms=250)
    names = [f["name"] for f in _filters(bootstrap, "gateway")]
    assert names[0] == "envoy.filters.http.fault"
    assert _filters(bootstrap, "gateway")[0]["typed_config"]["delay"]["fixed_delay"] == "0.250s"
    assert "envoy.filters.http.fault" not in [f["name"] for f in _filters(bootstrap, "baseline")]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("failure_mode", "Sometimes", "failure_mode"),
    ("delay_ms", -1.0, "delay_ms"),
    ("pods", (), "pods"),
])
def test_bad_settings_name_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**{field: value})
