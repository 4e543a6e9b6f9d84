"""Seeded synthetic workloads with inference-perf's parameter names and meanings.

Prompts are random 3-letter lowercase words joined by single spaces: with the simulator's
tokenizer (and roughly with BPE tokenizers) one word is one token and about 4 characters, so
lengths given in tokens hold and the EPP's 64-character prefix blocks line up with 16 tokens.

Workload file (YAML or JSON)::

    type: shared_prefix          # shared_prefix | random | multi_turn
    seed: 42
    shared_prefix:               # parameters under the type's name (or under ``params``)
      num_groups: 32
      num_prompts_per_group: 32
      system_prompt_len: 2048    # tokens shared by every prompt of a group
      question_len: 256          # tokens unique to each prompt
      output_len: 256            # max_tokens (with ignore_eos the exact output length)

``random``: ``num_prompts``, ``input_len``, ``output_len`` (or inference-perf's
``input_distribution`` / ``output_distribution`` with min, max, mean, std).
``multi_turn``: ``num_conversations``, ``turns``, ``system_prompt_len``, ``question_len``,
``output_len``; each turn resends the history (synthetic assistant replies), so later turns
share a growing prefix with earlier ones.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "WORKLOAD_TYPES",
    "RequestSpec",
    "WorkloadError",
    "WorkloadSpec",
    "fingerprint",
    "generate",
    "load_workload",
    "random_words",
    "workload_to_dict",
]

Api = Literal["completions", "chat"]


class WorkloadError(ValueError):
    """A workload spec is invalid; the message names the source and the field."""


@dataclass(frozen=True)
class WorkloadSpec:
    """What to send: a workload type, its parameters (validated, defaults filled) and a seed."""

    type: str
    params: dict[str, Any]
    seed: int = 0


@dataclass(frozen=True)
class RequestSpec:
    """One request of a workload; ``group`` is the prefix group (or conversation)."""

    group: str
    index: int
    api: Api
    prompt: str | None
    messages: list[dict[str, str]] | None
    max_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


_INT_FIELDS: dict[str, dict[str, int | None]] = {
    # field -> default (None = required)
    "shared_prefix": {
        "num_groups": None,
        "num_prompts_per_group": None,
        "system_prompt_len": None,
        "question_len": None,
        "output_len": None,
    },
    "random": {"num_prompts": 100, "input_len": None, "output_len": None},
    "multi_turn": {
        "num_conversations": None,
        "turns": None,
        "system_prompt_len": 0,
        "question_len": None,
        "output_len": None,
    },
}
_DISTRIBUTION_KEYS = {"min", "max", "mean", "std", "total_count"}
WORKLOAD_TYPES = tuple(_INT_FIELDS)


def _positive_int(value: Any, where: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkloadError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise WorkloadError(f"{where}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _distribution(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise WorkloadError(f"{where}: expected a mapping with {sorted(_DISTRIBUTION_KEYS)}")
    for key in value:
        if key not in _DISTRIBUTION_KEYS:
            raise WorkloadError(f"{where}.{key}: unknown key (one of {sorted(_DISTRIBUTION_KEYS)})")
    out = {k: _positive_int(v, f"{where}.{k}", allow_zero=k == "std") for k, v in value.items()}
    if "mean" not in out:
        raise WorkloadError(f"{where}.mean: required")
    return out


def _check_params(kind: str, raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    spec = _INT_FIELDS[kind]
    params: dict[str, Any] = {}
    extra_ok = {"input_distribution", "output_distribution"} if kind == "random" else set()
    for key in raw:
        if key not in spec and key not in extra_ok:
            raise WorkloadError(
                f"{where}.{key}: unknown parameter for {kind} (one of {sorted(spec)})"
            )
    if kind == "random":
        for length, dist in (
            ("input_len", "input_distribution"),
            ("output_len", "output_distribution"),
        ):
            if dist in raw:
                params[dist] = _distribution(raw[dist], f"{where}.{dist}")
                if length not in raw:
                    params[length] = params[dist]["mean"]
    for key, default in spec.items():
        if key in raw:
            allow_zero = key == "system_prompt_len"
            params[key] = _positive_int(raw[key], f"{where}.{key}", allow_zero)
        elif key not in params:
            if default is None:
                raise WorkloadError(f"{where}.{key}: required for {kind}")
            params[key] = default
    return params


def load_workload(data: Mapping[str, Any] | Path | str, source: str = "workload") -> WorkloadSpec:
    """Validate a workload mapping (or YAML/JSON file) into a ``WorkloadSpec``."""
    if isinstance(data, str | Path):
        path = Path(data)
        source = path.name
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise WorkloadError(f"{source}: cannot read: {exc}") from exc
        data = loaded if loaded is not None else {}
    if not isinstance(data, Mapping):
        raise WorkloadError(f"{source}: expected a mapping at the top level")
    kind = data.get("type")
    if kind not in _INT_FIELDS:
        raise WorkloadError(
            f"{source}: type: unknown workload type {kind!r} (one of {', '.join(WORKLOAD_TYPES)})"
        )
    allowed = {"type", "seed", "params", kind}
    for key in data:
        if key not in allowed:
            raise WorkloadError(f"{source}: {key}: unknown key (one of {sorted(allowed)})")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise WorkloadError(f"{source}: seed: expected an integer, got {seed!r}")
    key = kind if kind in data else "params"
    raw = data.get(key, {})
    if not isinstance(raw, Mapping):
        raise WorkloadError(f"{source}: {key}: expected a mapping")
    return WorkloadSpec(type=kind, params=_check_params(kind, raw, f"{source}: {key}"), seed=seed)


def workload_to_dict(spec: WorkloadSpec) -> dict[str, Any]:
    """The file form of ``spec`` (round-trips through ``load_workload``)."""
    return {"type": spec.type, "seed": spec.seed, spec.type: dict(spec.params)}


def random_words(rng: random.Random, n: int) -> str:
    """``n`` random 3-letter lowercase words joined by single spaces (about n tokens)."""
    letters = string.ascii_lowercase
    choice = rng.choice
    return " ".join(choice(letters) + choice(letters) + choice(letters) for _ in range(n))


def _sample_length(rng: random.Random, dist: Mapping[str, int] | None, fixed: int) -> int:
    if not dist:
        return fixed
    value = round(rng.gauss(dist["mean"], dist.get("std", 0)))
    return max(dist.get("min", 1), min(dist.get("max", value), value), 1)


def _shared_prefix(spec: WorkloadSpec, rng: random.Random, api: Api) -> list[RequestSpec]:
    p = spec.params
    out: list[RequestSpec] = []
    for g in range(p["num_groups"]):
        system = random_words(rng, p["system_prompt_len"])
        for _ in range(p["num_prompts_per_group"]):
            question = random_words(rng, p["question_len"])
            out.append(_request(f"g{g}", api, system, question, p["output_len"]))
    rng.shuffle(out)
    return out


def _random(spec: WorkloadSpec, rng: random.Random, api: Api) -> list[RequestSpec]:
    p = spec.params
    out = []
    for i in range(p["num_prompts"]):
        n_in = _sample_length(rng, p.get("input_distribution"), p["input_len"])
        n_out = _sample_length(rng, p.get("output_distribution"), p["output_len"])
        out.append(_request(f"r{i}", api, "", random_words(rng, n_in), n_out))
    return out


def _multi_turn(spec: WorkloadSpec, rng: random.Random, api: Api) -> list[RequestSpec]:
    p = spec.params
    conversations = []
    for c in range(p["num_conversations"]):
        system = random_words(rng, p["system_prompt_len"]) if p["system_prompt_len"] else ""
        history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        turns = []
        for _ in range(p["turns"]):
            history = [*history, {"role": "user", "content": random_words(rng, p["question_len"])}]
            turns.append((f"c{c}", list(history)))
            reply = random_words(rng, p["output_len"])
            history = [*history, {"role": "assistant", "content": reply}]
        conversations.append(turns)
    order = list(range(p["num_conversations"]))
    out: list[RequestSpec] = []
    for t in range(p["turns"]):  # turn t of every conversation before turn t+1 of any
        rng.shuffle(order)
        for c in order:
            group, messages = conversations[c][t]
            prompt = "\n".join(m["content"] for m in messages)
            out.append(
                RequestSpec(
                    group,
                    0,
                    "chat" if api == "chat" else "completions",
                    prompt if api == "completions" else None,
                    messages if api == "chat" else None,
                    p["output_len"],
                )
            )
    return out


def _request(group: str, api: Api, system: str, question: str, max_tokens: int) -> RequestSpec:
    if api == "chat":
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question})
        return RequestSpec(group, 0, api, None, messages, max_tokens)
    prompt = f"{system} {question}" if system else question
    return RequestSpec(group, 0, api, prompt, None, max_tokens)


_GENERATORS: dict[str, Callable[[WorkloadSpec, random.Random, Api], list[RequestSpec]]] = {
    "shared_prefix": _shared_prefix,
    "random": _random,
    "multi_turn": _multi_turn,
}


def generate(spec: WorkloadSpec, api: Api = "completions") -> list[RequestSpec]:
    """The workload's requests in issue order (deterministic for a given seed)."""
    rng = random.Random(spec.seed)
    requests = _GENERATORS[spec.type](spec, rng, api)
    return [
        RequestSpec(r.group, i, r.api, r.prompt, r.messages, r.max_tokens, r.extra)
        for i, r in enumerate(requests)
    ]


def fingerprint(requests: list[RequestSpec]) -> str:
    """A short stable digest of a request list (lets two runs prove they sent the same prompts)."""
    h = hashlib.sha256()
    for r in requests:
        h.update(json.dumps([r.group, r.prompt, r.messages, r.max_tokens]).encode())
    return h.hexdigest()[:16]
