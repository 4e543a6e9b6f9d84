"""Value types shared by the pure scheduling core: requests, endpoint snapshots, results.

They carry no behaviour and no I/O so a decision can be recorded and replayed from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CycleState",
    "Decision",
    "Endpoint",
    "LLMRequest",
    "SchedulingError",
]

CycleState = dict[str, Any]
"""Per-decision scratch space plugins share (e.g. prefix hashes for PreRequest)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One model-server endpoint with the metrics last scraped from it.

    ``metrics_time`` is the injected-clock time of the last successful scrape (None: never).
    """

    key: str  # "ip:port", the value sent to the gateway
    name: str = ""
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    waiting: float = 0.0
    running: float = 0.0
    kv_usage: float = 0.0
    running_adapters: frozenset[str] = frozenset()
    waiting_adapters: frozenset[str] = frozenset()
    max_lora: int = 0
    block_size: int = 0  # tokens per KV block, from vllm:cache_config_info
    num_gpu_blocks: int = 0
    metrics_time: float | None = None
    metrics_host: str = ""  # scrape host[:port] when not the serving address (file-discovery)


@dataclass(slots=True)
class LLMRequest:
    """A parsed inference request: what the scheduling plugins may look at."""

    request_id: str
    model: str
    target_model: str = ""
    api: str = "completions"  # completions | chat | responses | embeddings
    prompt: str = ""  # the text the prefix index hashes
    cache_salt: str = ""
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    objective: str = ""
    fairness_id: str = ""
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.target_model:
            self.target_model = self.model


class SchedulingError(Exception):
    """A request the EPP refuses; ``code`` is the EPP error code, ``http`` the status."""

    HTTP = {
        "BadRequest": 400,
        "NotFound": 404,
        "ServiceUnavailable": 503,
        "ResourceExhausted": 429,
        "InferencePoolResourceExhausted": 429,
        "Internal": 500,
        "BadConfiguration": 404,
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} - {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return self.HTTP.get(self.code, 500)

    @property
    def body(self) -> str:
        return f"inference error: {self.code} - {self.message}"


@dataclass(slots=True)
class Decision:
    """Everything a decision produced: the pick, fallbacks and every endpoint's scores.

    ``scores[key][plugin_name]`` is the clamped, unweighted score; ``scores[key]["total"]`` the
    weighted sum. ``plugin_seconds`` is filled only when the caller passes a timer.
    """

    request_id: str
    model: str
    profile: str
    picked: str
    fallbacks: list[str]
    scores: dict[str, dict[str, float]]
    prefix_match_blocks: dict[str, int] = field(default_factory=dict)
    prefix_total_blocks: int = 0
    candidates: int = 0
    plugin_seconds: dict[tuple[str, str, str], float] = field(default_factory=dict)
    picked_endpoint: Endpoint | None = None

    @property
    def endpoints(self) -> list[str]:
        return [self.picked, *self.fallbacks]

    def log_record(self) -> dict[str, Any]:
        return {
            "msg": "decision",
            "request_id": self.request_id,
            "model": self.model,
            "profile": self.profile,
            "picked": self.picked,
            "fallbacks": self.fallbacks,
            "scores": self.scores,
            "prefix_match_blocks": self.prefix_match_blocks,
            "prefix_total_blocks": self.prefix_total_blocks,
        }
