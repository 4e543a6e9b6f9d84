"""The one plugin table: config ``type`` name -> plugin class (as the EPP's register.go).

Every plugin scheduler_ref knows is listed here and nowhere else; plugin modules do not
register themselves. ``LEGACY_ALIASES`` are older type names still accepted for configs
written for earlier EPP versions; they build the same class as their current name.
See ``scheduler_ref/plugins/README.md`` for parameters and defaults.
"""

from __future__ import annotations

from scheduler_ref.params import Params
from scheduler_ref.plugins.active_request_scorer import ActiveRequestScorer
from scheduler_ref.plugins.base import Plugin
from scheduler_ref.plugins.by_label import ByLabel
from scheduler_ref.plugins.by_label_selector import ByLabelSelector
from scheduler_ref.plugins.datalayer import (
    CoreMetricsExtractor,
    FileDiscoveryPlugin,
    MetricsDataSource,
)
from scheduler_ref.plugins.kv_cache_scorer import KVCacheUtilizationScorer
from scheduler_ref.plugins.load_aware_scorer import LoadAwareScorer
from scheduler_ref.plugins.lora_affinity_scorer import LoraAffinityScorer
from scheduler_ref.plugins.max_score_picker import MaxScorePicker
from scheduler_ref.plugins.no_hit_lru_scorer import NoHitLRUScorer
from scheduler_ref.plugins.openai_parser import OpenAIParser
from scheduler_ref.plugins.prefix_cache_scorer import PrefixCacheScorer
from scheduler_ref.plugins.queue_scorer import QueueScorer
from scheduler_ref.plugins.random_picker import RandomPicker
from scheduler_ref.plugins.role_filters import DecodeFilter, PrefillFilter
from scheduler_ref.plugins.session_affinity_scorer import SessionAffinityScorer
from scheduler_ref.plugins.single_profile_handler import SingleProfileHandler
from scheduler_ref.plugins.utilization_detector import UtilizationDetector
from scheduler_ref.plugins.weighted_random_picker import WeightedRandomPicker

__all__ = ["LEGACY_ALIASES", "PLUGIN_TYPES", "create", "known_types", "resolve"]

_CLASSES: tuple[type[Plugin], ...] = (
    # GAIE v1.5.0 (sigs.k8s.io/gateway-api-inference-extension)
    QueueScorer,
    KVCacheUtilizationScorer,
    PrefixCacheScorer,
    LoraAffinityScorer,
    MaxScorePicker,
    RandomPicker,
    WeightedRandomPicker,
    SingleProfileHandler,
    UtilizationDetector,
    OpenAIParser,
    MetricsDataSource,
    CoreMetricsExtractor,
    # llm-d (llm-d-inference-scheduler / llm-d-router)
    NoHitLRUScorer,
    LoadAwareScorer,
    ActiveRequestScorer,
    SessionAffinityScorer,
    ByLabel,
    ByLabelSelector,
    DecodeFilter,
    PrefillFilter,
    FileDiscoveryPlugin,
)

PLUGIN_TYPES: dict[str, type[Plugin]] = {cls.type_name: cls for cls in _CLASSES}

# Older names -> current type name (accepted, built as the current type).
LEGACY_ALIASES: dict[str, str] = {
    "kv-cache-scorer": "kv-cache-utilization-scorer",  # llm-d EPP <= v0.3
}


def resolve(type_name: str) -> str | None:
    """The current type name for ``type_name`` (itself, or what a legacy alias stands for)."""
    if type_name in PLUGIN_TYPES:
        return type_name
    return LEGACY_ALIASES.get(type_name)


def known_types() -> list[str]:
    return sorted([*PLUGIN_TYPES, *LEGACY_ALIASES])


def create(type_name: str, name: str, params: Params) -> Plugin:
    """Instantiate a plugin; KeyError for an unknown type, ParamError for bad parameters."""
    current = resolve(type_name)
    if current is None:
        raise KeyError(type_name)
    return PLUGIN_TYPES[current](name, params)
