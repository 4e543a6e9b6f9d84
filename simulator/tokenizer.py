"""Deterministic tokenizer shared by the simulator and the load generator.

Text is split with ``\\s*\\w+|\\s*[^\\w\\s]`` (a piece keeps its leading whitespace), then each
piece into chunks of at most 4 characters; each chunk is one token whose id is a stable xxhash
of the chunk modulo ``VOCAB_SIZE``. So " abc" is 1 token, " hello" is 2, and text made of
space-separated 3-letter words has exactly one token per word: roughly 4 characters per
token, like real BPE tokenizers, so character- and token-based block sizes line up.
No downloads, no state beyond an id cache.
"""

from __future__ import annotations

import re

import xxhash

__all__ = ["CHUNK_CHARS", "VOCAB_SIZE", "count_tokens", "pieces", "token_id", "tokenize"]

VOCAB_SIZE = 50_000
CHUNK_CHARS = 4

_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]")
_ID_CACHE: dict[str, int] = {}
_ID_CACHE_MAX = 1 << 20


def token_id(chunk: str) -> int:
    """Stable id of one chunk (xxh64 of its UTF-8 bytes, modulo the vocabulary size)."""
    tid = _ID_CACHE.get(chunk)
    if tid is None:
        tid = xxhash.xxh64_intdigest(chunk.encode("utf-8", "surrogatepass")) % VOCAB_SIZE
        if len(_ID_CACHE) >= _ID_CACHE_MAX:
            _ID_CACHE.clear()
        _ID_CACHE[chunk] = tid
    return tid


def pieces(text: str) -> list[str]:
    """The token strings of ``text`` in order (what ``echo`` mode sends back)."""
    out: list[str] = []
    append = out.append
    for piece in _PIECE.findall(text):
        if len(piece) <= CHUNK_CHARS:
            append(piece)
        else:
            out.extend(piece[i : i + CHUNK_CHARS] for i in range(0, len(piece), CHUNK_CHARS))
    return out


def tokenize(text: str) -> list[int]:
    """Token ids of ``text``."""
    cache = _ID_CACHE
    return [cache.get(c) or token_id(c) for c in pieces(text)]


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` without building the id list."""
    n = 0
    for piece in _PIECE.findall(text):
        n += (len(piece) + CHUNK_CHARS - 1) // CHUNK_CHARS
    return n
