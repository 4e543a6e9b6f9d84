"""The local stack's config crosses to its daemon as JSON and comes back the same."""

from __future__ import annotations

from pathlib import Path

from fixtures.localstack import LocalStackConfig, SimulatorParams
from fixtures.localstack_daemon import config_from_json, config_to_json
from fixtures.stack import Pod


def test_config_survives_the_json_round_trip_with_external_pods() -> None:
    config = LocalStackConfig(
        log_dir=Path("/tmp/logs"), pods=2, simulator=SimulatorParams(speed_factors=(1.0, 4.0)),
        external_pods=(Pod("decode-a", "http://127.1.0.1:8000", "http://127.1.0.1:8000/metrics",
                           "127.1.0.1:8000"),),
        endpoint_source=("--pool-name", "p"), kubeconfig=Path("/tmp/kubeconfig"))
    assert config_from_json(config_to_json(config)) == config
