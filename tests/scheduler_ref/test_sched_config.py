"""Config loading: defaults as the EPP fills them, both apiVersions, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scheduler_ref.config import DEFAULT_CONFIG, ConfigError, load_config, load_config_file
from scheduler_ref.plugins.max_score_picker import MaxScorePicker
from scheduler_ref.plugins.prefix_cache_scorer import PrefixCacheScorer

GUIDE = Path("/work/shared/fixtures/guide")


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


@pytest.mark.skipif(not GUIDE.exists(), reason="guide fixtures not present")
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
        "plugins:\n- type: prefix-cache-scorer\n  name: pfx\n  parameters: {hashBlockSize: 32}\n"
        "- type: load-aware-scorer\n"
    )
    profile = cfg.profiles[0]
    assert profile.name == "default"
    assert [s.name for s, _ in profile.scorers] == ["pfx", "load-aware-scorer"]
    pfx = cfg.plugins["pfx"]
    assert isinstance(pfx, PrefixCacheScorer) and pfx.block_size == 32
    assert pfx.capacity == 31250 and pfx.max_blocks == 256 and pfx.auto_tune


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
