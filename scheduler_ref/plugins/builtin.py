"""Imports every built-in plugin module so each registers itself."""

from scheduler_ref.plugins import (  # noqa: F401
    active_request_scorer,
    by_label,
    by_label_selector,
    kv_cache_scorer,
    load_aware_scorer,
    lora_affinity_scorer,
    max_score_picker,
    no_hit_lru_scorer,
    prefix_cache_scorer,
    queue_scorer,
    random_picker,
    role_filters,
    session_affinity_scorer,
    single_profile_handler,
    utilization_detector,
    weighted_random_picker,
)
