"""1,200 generated bodies against a live server: only deliberate 4xx (or 200), no hang."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.simulator_servers import InProcessServer, sim_config

SEED = 20240601
N_BODIES = 1200


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2, 7, 2**31, 2**63, -(2**70), 10**400])
    if kind == 3:
        return rng.choice([0.5, -3.2, 1e308, 1e-300])
    if kind in (4, 5, 6):
        alphabet = "ab \u00e9\u4e2d\U0001f600\x00\n\"\\<|>"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
    if kind in (7, 8):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


_KEYS = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "stream",
         "stream_options", "include_usage", "n", "seed", "ignore_eos", "role", "content",
         "temperature", "top_p", "type", "text"]


def _body(rng: random.Random) -> bytes:
    """Mostly near-valid requests with one field mutated, plus junk and truncated JSON."""
    base: dict[str, Any] = {"model": "sim-model", "max_tokens": rng.randrange(1, 4)}
    if rng.random() < 0.5:
        base["prompt"] = "fuzz prompt"
    else:
        base["messages"] = [{"role": "user", "content": "fuzz"}]
    for _ in range(rng.randrange(0, 3)):
        base[rng.choice(_KEYS)] = _value(rng)
    if rng.random() < 0.3:
        base["stream"] = True
    text = json.dumps(base) if rng.random() < 0.8 else json.dumps(_value(rng))
    roll = rng.random()
    if roll < 0.1:
        text = text[: rng.randrange(len(text) + 1)]  # truncated
    elif roll < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def server() -> Iterator[InProcessServer]:
    with InProcessServer(sim_config(step_base_ms=1.0)) as s:
        yield s


def test_fuzzed_bodies_never_crash_or_hang(server: InProcessServer) -> None:
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for i in range(N_BODIES):
            path = "/v1/chat/completions" if i % 2 else "/v1/completions"
            r = http.post(path, content=_body(rng), headers={"content-type": "application/json"})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, r.text
            if r.status_code >= 400:
                err = r.json()["error"]
                assert err["code"] == r.status_code and isinstance(err["message"], str)
            assert r.headers.get("x-inference-pod") == "pod-a"
        assert http.get("/health").status_code == 200
    assert statuses.get(200, 0) > 50 and sum(v for k, v in statuses.items() if k >= 400) > 200
