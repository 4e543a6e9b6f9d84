"""Settings of one simulator process; each field is a CLI flag (see ``__main__``).

Defaults describe a small model (≈1-8 B parameters) on one GPU: a decode step of ≈10 ms plus
0.1 ms per running sequence, prefill at ≈0.1 ms per uncached token, vLLM's scheduler limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FAILURE_TYPES", "EngineConfig", "FaultConfig", "ServerConfig"]

# failure type -> (HTTP status, OpenAI error type, message)
FAILURE_TYPES: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "RateLimitError", "Rate limit reached (injected fault)"),
    "server_error": (500, "InternalServerError", "Internal server error (injected fault)"),
    "unavailable": (503, "ServiceUnavailableError", "Service unavailable (injected fault)"),
    "context_length": (400, "BadRequestError", "Prompt exceeds the context length (injected)"),
    "invalid_request": (400, "BadRequestError", "Invalid request (injected fault)"),
    "model_not_found": (404, "NotFoundError", "The model does not exist (injected fault)"),
}


@dataclass
class EngineConfig:
    """Scheduler limits, KV geometry and the step-time model.

    Step time (seconds) = (step_base_ms + prefill_ms_per_token * prefill tokens
    + decode_ms_per_seq * decode sequences) * speed_factor * time_scale / 1000.
    """

    model: str = "sim-model"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    block_size: int = 16
    num_gpu_blocks: int = 4096
    max_model_len: int = 16384
    step_base_ms: float = 10.0
    prefill_ms_per_token: float = 0.1
    decode_ms_per_seq: float = 0.1
    speed_factor: float = 1.0
    time_scale: float = 1.0
    max_loras: int = 1

    def step_seconds(self, prefill_tokens: int, decode_seqs: int) -> float:
        """Modelled duration of a step that prefills and decodes this much work."""
        ms = (
            self.step_base_ms
            + self.prefill_ms_per_token * prefill_tokens
            + self.decode_ms_per_seq * decode_seqs
        )
        return ms * self.speed_factor * self.time_scale / 1000.0


@dataclass
class FaultConfig:
    """Failure injection: a per-request probability and the types drawn from."""

    failure_rate: float = 0.0
    failure_types: list[str] = field(default_factory=lambda: ["rate_limit", "unavailable"])


@dataclass
class ServerConfig:
    """Everything the HTTP server needs beyond the engine."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    served_model_names: list[str] = field(default_factory=list)
    host: str = "0.0.0.0"
    port: int = 8000
    pod_name: str = "sim-0"
    namespace: str = "default"
    mode: str = "random"
    seed: int = 0
    default_max_tokens: int = 16
    eos_probability: float = 0.0
    lora_modules: list[str] = field(default_factory=list)
    loop: str = "auto"  # CLI event loop: auto (uvloop if importable) | uvloop | asyncio
    # /admin/* routes and the x-sim-force-error header let any client degrade the pod:
    # off unless a test harness asks for them (--enable-admin).
    enable_admin: bool = False

    @property
    def served_model_name(self) -> str:
        """The primary name clients use (first served name, else the model)."""
        return self.served_model_names[0] if self.served_model_names else self.engine.model
