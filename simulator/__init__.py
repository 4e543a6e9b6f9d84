"""A vLLM-compatible model-server simulator whose latency follows load and prefix-cache hits.

Layout (one job per module):

- ``tokenizer``  deterministic word/punctuation tokenizer shared with the load generator
- ``config``     engine, fault and server settings (the CLI flags in one place)
- ``kv_cache``   KV blocks with automatic prefix caching (chained hashes, LRU eviction)
- ``engine``     the step loop: continuous batching, chunked prefill, preemption (pure, no clock)
- ``metrics``    vLLM-named Prometheus metrics rendered from engine state
- ``generation`` output tokens (``random`` / ``echo``) and the chat template
- ``protocol``   OpenAI request validation, response and SSE chunk shapes, error objects
- ``faults``     failure injection, forced errors, readiness and hang switches
- ``driver``     the thin asyncio shell that runs the engine on a real clock
- ``server``     the aiohttp application (OpenAI routes, /metrics, /health, /admin)
- ``__main__``   the CLI (``python -m simulator`` / ``llm-sim``)
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
