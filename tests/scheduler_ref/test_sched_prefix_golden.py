"""Golden prefix hashes of GAIE v1.5.0: scheduler_ref must hash exactly what the EPP hashes.

How the vectors were made (tests/data/scheduler_ref/gaie-v1.5.0-prefix-hashes.jsonl): a
throwaway Go program (not in this repository) built against the module cache's
``sigs.k8s.io/gateway-api-inference-extension@v1.5.0`` parsed each body with the EPP's own
``openai.NewOpenAIParser().ParseRequest`` (path from ``:path``), took the bytes GAIE's
``approximateprefix.getUserInputBytes`` takes (``json.Marshal`` of the typed messages / items /
combined responses parts, the completions prompt's PlainText), and ran the loop of
``approximateprefix.hashPrompt``: h0 = xxhash64(targetModel || cache_salt), then per full block
of ``block_size_tokens * 4`` bytes h = xxhash64(block || le64(prev)), input cut at
``max_blocks`` blocks, no hash for a trailing partial block or an input shorter than one block.
The file holds only those outputs (body, hashed text, hashes as decimal uint64).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduler_ref.params import Params
from scheduler_ref.plugins.prefix_cache_scorer import HASHES, PrefixCacheScorer
from scheduler_ref.prefix_index import block_hashes
from scheduler_ref.request_parse import parse_request
from tests.support.scheduler_inputs import NOW, endpoints

VECTORS = Path(__file__).resolve().parents[1] / "data" / "scheduler_ref" / \
    "gaie-v1.5.0-prefix-hashes.jsonl"
CASES = [json.loads(line) for line in VECTORS.read_text().splitlines() if line.strip()]


def _id(case: dict[str, Any]) -> str:
    return f"{case['path']}-{len(case.get('hashes') or [])}"


def test_vectors_cover_every_api_and_edge() -> None:
    paths = {c["path"] for c in CASES}
    assert {"/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/embeddings",
            "/v1/conversations", "/x/unknown"} <= paths
    assert any(not c.get("hashes") for c in CASES)  # shorter than one block
    assert any("\\u003c" in c["hashed_text"] for c in CASES)  # Go's HTML escaping


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_hashed_text_and_hashes_match_gaie(case: dict[str, Any]) -> None:
    req = parse_request(case["path"], {}, case["body"].encode())
    assert req.prompt == case["hashed_text"]
    scorer = PrefixCacheScorer("p", Params({
        "autoTune": False, "blockSizeTokens": case["block_size_tokens"],
        "maxPrefixBlocksToMatch": case["max_blocks"]}))
    state: dict[str, Any] = {}
    scorer.score(req, endpoints(2), state, NOW)
    assert [str(h) for h in state[HASHES]] == (case.get("hashes") or [])


def test_a_changed_byte_changes_the_hashes() -> None:
    """Negative control: the comparison above is sensitive to one character."""
    case = next(c for c in CASES if c["path"] == "/v1/chat/completions")
    req = parse_request(case["path"], {}, case["body"].replace("kind", "kinD").encode())
    got = block_hashes(req.prompt.encode(), req.model.encode(), 64, 256)
    assert [str(h) for h in got] != case["hashes"]
