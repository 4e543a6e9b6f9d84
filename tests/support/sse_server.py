"""A tiny OpenAI-compatible SSE server for load-test tests (run as its own process).

Latency is set by flags (``--ttft-ms``, ``--itl-ms``); it reports its own TTFT per request
(receive -> first content chunk written) at ``GET /server_stats`` so tests can compare
client and server clocks. Prompt tokens = whitespace-separated words; cached tokens =
leading 16-word blocks seen before (a toy prefix cache), so hit-rate figures are non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

BLOCK = 16


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seen: set[int] = set()
        self.ttfts: list[float] = []
        self.requests = 0

    def cached(self, words: list[str]) -> int:
        parent, hits, hitting = 0, 0, True
        for i in range(0, len(words) - len(words) % BLOCK, BLOCK):
            parent = hash((parent, *words[i : i + BLOCK]))
            if hitting and parent in self.seen:
                hits += BLOCK
            else:
                hitting = False
                self.seen.add(parent)
        return hits


def _prompt_words(body: dict[str, Any]) -> list[str]:
    if "messages" in body:
        return " ".join(m["content"] for m in body["messages"]).split()
    return str(body.get("prompt", "")).split()


async def completions(request: web.Request) -> web.StreamResponse:
    state: State = request.app["state"]
    t_recv = time.perf_counter()
    body = await request.json()
    state.requests += 1
    chat = request.path.endswith("/chat/completions")
    words = _prompt_words(body)
    n_out = int(body.get("max_tokens", 16))
    usage = {
        "prompt_tokens": len(words),
        "completion_tokens": n_out,
        "total_tokens": len(words) + n_out,
        "prompt_tokens_details": {"cached_tokens": state.cached(words)},
    }
    headers = {"x-inference-pod": state.args.pod}
    args = state.args
    if args.fail_every and state.requests % args.fail_every == 0:
        return web.json_response(
            {"error": {"message": "injected", "type": "server_error", "param": None, "code": 503}},
            status=503,
            headers=headers,
        )
    if args.ttft_ms:
        await asyncio.sleep(args.ttft_ms / 1000)
    if not body.get("stream"):
        text = " tok" * n_out
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": text}}
            if chat
            else {"index": 0, "text": text}
        )
        return web.json_response({"choices": [choice], "usage": usage}, headers=headers)
    resp = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
    await resp.prepare(request)

    def chunk(content: str | None, with_usage: bool = False) -> bytes:
        if with_usage:
            obj: dict[str, Any] = {"choices": [], "usage": usage}
        elif chat:
            obj = {"choices": [{"index": 0, "delta": {"content": content}}]}
        else:
            obj = {"choices": [{"index": 0, "text": content}]}
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    if chat:
        await resp.write(b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n')
    for i in range(n_out):
        if i and args.itl_ms:
            await asyncio.sleep(args.itl_ms / 1000)
        await resp.write(chunk(" tok"))
        if i == 0:
            state.ttfts.append(time.perf_counter() - t_recv)
            if args.truncate_every and state.requests % args.truncate_every == 0:
                await resp.write_eof()  # a clean end of the body, but no [DONE]
                return resp
    await resp.write(chunk(None, with_usage=True))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def server_stats(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    return web.json_response({"requests": state.requests, "ttft_s": state.ttfts})


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pod", default="sse-0")
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--itl-ms", type=float, default=0.0)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--prefix", default="",
                   help="serve the OpenAI routes only under this path (a proxied Service)")
    p.add_argument("--truncate-every", type=int, default=0,
                   help="every Nth stream ends after its first chunk, without [DONE]")
    args = p.parse_args()
    app = web.Application()
    app["state"] = State(args)
    app.router.add_post(f"{args.prefix}/v1/completions", completions)
    app.router.add_post(f"{args.prefix}/v1/chat/completions", completions)
    app.router.add_get("/server_stats", server_stats)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
