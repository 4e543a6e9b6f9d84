"""Config loading: defaults as the EPP fills them, both apiVersions, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scheduler_ref.config import DEFAULT_CONFIG, ConfigError, load_config, load_config_file
from scheduler_ref.plugins.max_score_picker import MaxScorePicker
from scheduler_ref.plugins.prefix_cache_scorer import PrefixCacheScorer

GUIDE = Path(__file__).resolve().parents[1] / "data" / "guide"


def _configmaps() -> list[tuple[str, str]]:
    out = []
    for f in sorted(GUIDE.glob("v0.*/*/gaie.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "ConfigMap":
                for key, text in doc["data"].items():
                    out.append((f"{f}:{key}", text))
    return out


def test_default_config_weights_mirror_the_epp_builtin() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    (profile,) = cfg.profiles
    weights = {s.name: w for s, w in profile.scorers}
    assert weights == {"queue-scorer": 2, "kv-cache-utilization-scorer": 2,
                       "prefix-cache-scorer": 3}
    assert isinstance(profile.picker, MaxScorePicker)
    assert cfg.handler.type_name == "single-profile-handler"


def test_guide_configs_that_use_supported_plugins_load() -> None:
    loaded = 0
    for where, text in _configmaps():
        if "decision-tree-filter" in text:  # v0.2's legacy filter tree: not implemented
            continue
        cfg = load_config(text, where)
        weights = [w for _, w in cfg.profiles[0].scorers]
        assert weights == [1.0, 1.0, 1.0], where
        loaded += 1
    assert loaded >= 4


def test_llm_d_api_version_and_defaults_filled() -> None:
    cfg = load_config(
        "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n"
        "plugins:\n- type: prefix-cache-scorer\n  name: pfx\n  parameters: {blockSizeTokens: 8}\n"
        "- type: load-aware-scorer\n"
    )
    profile = cfg.profiles[0]
    assert profile.name == "default"
    assert [s.name for s, _ in profile.scorers] == ["pfx", "load-aware-scorer"]
    pfx = cfg.plugins["pfx"]
    assert isinstance(pfx, PrefixCacheScorer) and pfx.block_size == 32
    assert pfx.capacity == 31250 and pfx.max_blocks == 256 and pfx.auto_tune
    assert pfx.max_tokens == 0


def test_prefix_scorer_legacy_char_block_sizes_are_ignored_as_in_gaie_v1_5() -> None:
    cfg = load_config("plugins: [{type: prefix-cache-scorer, parameters: {hashBlockSize: 5, "
                      "blockSize: 5}}]")
    pfx = cfg.plugins["prefix-cache-scorer"]
    assert isinstance(pfx, PrefixCacheScorer) and pfx.block_size == 64
    with pytest.raises(ConfigError, match="blockSize: is deprecated"):
        load_config("plugins: [{type: prefix-cache-scorer, parameters: {blockSize: 64, "
                    "blockSizeTokens: 0}}]")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("plugins: [{type: no-such-scorer}]",
         "plugin 'no-such-scorer' (plugins[0]): type: unknown plugin type"),
        ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n"
         "- {name: p, plugins: [{pluginRef: ghost}]}",
         "plugin 'ghost' (schedulingProfiles[0].plugins[0]): pluginRef:"),
        ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n"
         "- {name: p, plugins: [{pluginRef: queue-scorer, weight: abc}]}",
         "plugin 'queue-scorer' (schedulingProfiles[0].plugins[0]): weight: must be a "
         "non-negative number, got 'abc'"),
        ("plugins: [{type: queue-scorer}]\nschedulingProfiles:\n"
         "- {name: p, plugins: [{pluginRef: queue-scorer, weight: -1}]}",
         "weight: must be a non-negative number, got -1"),
        ("plugins: [{type: load-aware-scorer, parameters: {threshold: x}}]",
         "plugin 'load-aware-scorer' (plugins[0]): parameters.threshold: must be a number"),
        ("plugins: [{type: single-profile-handler}, {type: queue-scorer}]\nschedulingProfiles:\n"
         "- {name: a, plugins: [{pluginRef: queue-scorer}]}\n"
         "- {name: b, plugins: [{pluginRef: queue-scorer}]}",
         "single-profile-handler needs exactly one profile"),
        ("apiVersion: v9\nplugins: []", "apiVersion: unsupported apiVersion"),
        ("plugins: [", "invalid YAML"),
    ],
)
def test_errors_are_one_line_and_name_file_plugin_field(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text, "/etc/epp/x.yaml")
    msg = str(info.value)
    assert msg.startswith("/etc/epp/x.yaml: ")
    assert needle in msg
    assert "\n" not in msg


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "absent.yaml")


def _weights(cfg: object) -> dict[str, float]:
    return {s.name: w for s, w in cfg.profiles[0].scorers}  # type: ignore[attr-defined]


OPTIMIZED_BASELINE = {"queue-scorer": 2, "kv-cache-utilization-scorer": 2,
                      "prefix-cache-scorer": 3, "no-hit-lru-scorer": 2}


def test_no_kubernetes_guide_config_loads_as_shipped() -> None:
    cfg = load_config_file(GUIDE / "current" / "no-kubernetes" / "config.yaml")
    assert _weights(cfg) == OPTIMIZED_BASELINE
    assert isinstance(cfg.profiles[0].picker, MaxScorePicker)
    discovery = cfg.data_layer.discovery
    assert discovery is not None
    assert (discovery.path, discovery.watch) == ("/etc/epp/endpoints.yaml", True)
    ((source, (extractor,)),) = cfg.data_layer.sources
    assert (source.name, extractor.name) == ("metrics-source", "metrics-extractor")
    assert (source.scheme, source.path, source.insecure_skip_verify) == ("http", "/metrics", True)
    assert extractor.engine_for({}).kv_usage == "vllm:kv_cache_usage_perc"


def test_router_chart_configs_load_with_their_weights() -> None:
    docs = yaml.safe_load_all((GUIDE / "current" / "standalone" / "router.yaml").read_text())
    data = next(d for d in docs if d and d.get("kind") == "ConfigMap"
                and "optimized-baseline-plugins.yaml" in (d.get("data") or {}))["data"]
    assert _weights(load_config(data["optimized-baseline-plugins.yaml"])) == OPTIMIZED_BASELINE
    default = load_config(data["default-plugins.yaml"])
    assert _weights(default) == {"queue-scorer": 2, "kv-cache-utilization-scorer": 2,
                                 "prefix-cache-scorer": 3}
    ((source, _),) = default.data_layer.sources
    assert (source.scheme, source.path, source.insecure_skip_verify) == ("http", "/metrics", True)


def test_no_data_layer_injects_the_default_metrics_source() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    ((source, (extractor,)),) = cfg.data_layer.sources
    assert source.type_name == "metrics-data-source"
    assert extractor.type_name == "core-metrics-extractor"
    assert cfg.data_layer.discovery is None


def test_legacy_alias_builds_the_current_type() -> None:
    cfg = load_config("plugins: [{type: kv-cache-scorer}]")
    (scorer, _), = cfg.profiles[0].scorers
    assert scorer.type_name == "kv-cache-utilization-scorer"
    assert scorer.name == "kv-cache-scorer"


_FD = "- {type: file-discovery, parameters: {path: /x.yaml}}\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("plugins: [{type: queue-scorer}]\nplugin: []", "plugin: unknown field"),
        ("plugins:\n" + _FD + "- {type: queue-scorer}\ndataLayer: {discovery: {pluginRef: "
         "queue-scorer}}", "plugin 'queue-scorer' (dataLayer.discovery): pluginRef: a "
         "'queue-scorer' is not a discovery plugin"),
        ("plugins:\n" + _FD + "dataLayer: {injectDefaults: false, discovery: {pluginRef: "
         "file-discovery}}", "dataLayer: sources: no metrics source"),
        ("plugins:\n" + _FD + "dataLayer: {injectDefaults: 'no'}",
         "dataLayer: injectDefaults: must be true or false, got 'no'"),
        ("plugins: [{type: metrics-data-source}]\ndataLayer: {sources: [{pluginRef: "
         "metrics-data-source, extractors: [{pluginRef: metrics-data-source}]}]}",
         "(dataLayer.sources[0].extractors[0]): pluginRef: a 'metrics-data-source' is not a "
         "metrics extractor"),
        ("plugins: [{type: queue-scorer}]\ndataLayer: {sources: [{pluginRef: nope}]}",
         "plugin 'nope' (dataLayer.sources[0]): pluginRef: refers to no plugin"),
        ("plugins: [{type: metrics-data-source, parameters: {scheme: ftp}}]",
         "parameters.scheme: must be http or https, got 'ftp'"),
        ("plugins: [{type: file-discovery}]", "parameters.path: is required"),
        ("plugins:\n" + _FD + "schedulingProfiles:\n- {name: d, plugins: [{pluginRef: "
         "file-discovery}]}", "a 'file-discovery' is a data-layer plugin"),
        ("plugins: [{type: core-metrics-extractor, parameters: {defaultEngine: tgi}}]",
         "parameters.defaultEngine: unknown engine 'tgi'"),
        ("plugins: [{type: core-metrics-extractor, parameters: {engineConfigs: [{name: vllm, "
         "kvUsage: x}]}}]", "parameters.engineConfigs[0].kvUsage: unknown field"),
    ],
)
def test_data_layer_errors_name_the_field(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text, "/etc/epp/c.yaml")
    assert needle in str(info.value)
    assert str(info.value).startswith("/etc/epp/c.yaml: ")
