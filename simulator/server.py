"""The aiohttp application: vLLM's OpenAI routes plus /metrics, /health and /admin.

Routes
  POST /v1/completions, /v1/chat/completions   JSON or SSE (``stream``), usage with
                                               ``prompt_tokens_details.cached_tokens``
  GET  /v1/models, /health, /metrics, /version
  POST /v1/load_lora_adapter {"lora_name", "lora_path"}, /v1/unload_lora_adapter {"lora_name"}
  POST /reset_prefix_cache                     drop unreferenced cached blocks (as vLLM)
Admin (reliability suites; unauthenticated, loopback/cluster use only)
  GET/POST /admin/config   read / change coefficients and fault settings at runtime, e.g.
                           {"speed_factor": 3, "step_base_ms": 20, "failure_rate": 0.1}
  POST /admin/health       {"ready": false} makes /health answer 503 (true restores it)
  POST /admin/hang         {"enabled": true} holds new generation requests until disabled
  GET  /admin/stats        raw recent step overruns and server TTFTs (``?reset=1`` clears)
Header ``x-sim-force-error: 429|503|500|400|404|<type>`` fails that one request.
The /admin routes and the header exist only with ``--enable-admin`` (off by default).
Every response (errors and /metrics included) carries x-inference-pod, x-inference-namespace
and x-inference-port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import CollectorRegistry

from simulator.config import FAILURE_TYPES, ServerConfig
from simulator.driver import EngineDriver, RequestHandle
from simulator.engine import Engine, EngineRequest, RequestStatus
from simulator.faults import FORCE_ERROR_HEADER, Faults
from simulator.generation import OutputPlanner
from simulator.metrics import CONTENT_TYPE, EngineCollector, render
from simulator.protocol import (
    DONE,
    ApiError,
    ChunkTemplate,
    ParsedRequest,
    chat_response,
    completion_response,
    error_body,
    parse_request,
    usage_dict,
)

__all__ = ["SIM_KEY", "Simulator", "SseSink", "app_runner", "build_app"]

log = logging.getLogger("simulator.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A body that stops arriving (a client gone quiet, or a broken chunk after the first one,
# which aiohttp's parser never reports to the reader) is answered, never waited on forever.
BODY_READ_TIMEOUT_S = 30.0


async def read_body(request: web.Request) -> bytes:
    """The request body, or a 408 OpenAI error once it took BODY_READ_TIMEOUT_S to arrive."""
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            return await request.read()
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within "
                            f"{BODY_READ_TIMEOUT_S:g} s") from None

# Engine settings /admin/config may change at runtime: name -> type
_TUNABLE_ENGINE = {
    "step_base_ms": float, "prefill_ms_per_token": float, "decode_ms_per_seq": float,
    "speed_factor": float, "time_scale": float, "max_num_seqs": int,
    "max_num_batched_tokens": int,
}


class SseSink:
    """Writes one stream's token chunks straight to its socket (``RequestHandle.sink``).

    Called by the driver after each step that emitted a token of the request: one
    ``transport.write`` of one HTTP chunk holding the new SSE events, no task switch, no
    drain. It declines (returns False, so the driver wakes the handler instead) once the
    request has ended (the handler writes the last chunk, usage and ``[DONE]`` with the
    terminator) or when the socket's buffer is over its high-water mark (the handler awaits
    the drain). ``sent`` counts the tokens written so far, by either of them.
    """

    __slots__ = ("req", "sent", "tpl", "transport")

    def __init__(self, req: EngineRequest, tpl: ChunkTemplate,
                 transport: asyncio.Transport | None) -> None:
        self.req = req
        self.tpl = tpl
        self.transport = transport
        self.sent = 0

    def backed_up(self) -> bool:
        t = self.transport
        return t is not None and t.get_write_buffer_size() > t.get_write_buffer_limits()[1]

    def __call__(self) -> bool:
        req, t = self.req, self.transport
        if req.finished or t is None or t.is_closing() or self.backed_up():
            return False
        n, k = req.num_output, self.sent
        if n <= k:
            return True
        token = self.tpl.token
        texts = req.output_texts
        body = token(texts[k]) if n == k + 1 else b"".join(token(texts[i]) for i in range(k, n))
        t.write(b"%x\r\n%b\r\n" % (len(body), body))
        self.sent = n
        return True


class Simulator:
    """State of one simulated pod: engine, driver, faults, adapters, identity."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.engine = Engine(config.engine)
        self.driver = EngineDriver(self.engine, clock)
        self.clock = clock
        self.faults = Faults(config.faults, config.seed)
        self.planner = OutputPlanner(config.mode, config.seed, config.eos_probability)
        self.served_names = set(config.served_model_names or [config.engine.model])
        self.loras: dict[str, str] = {}
        for spec in config.lora_modules:
            name, _, path = spec.partition("=")
            self.loras[name] = path or name
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(self.engine, config.served_model_name))
        self.port = config.port
        self._ids = itertools.count(1)
        self._boot = os.urandom(3).hex()

    def identity_headers(self) -> dict[str, str]:
        c = self.config
        return {"x-inference-pod": c.pod_name, "x-inference-namespace": c.namespace,
                "x-inference-port": str(self.port)}

    # -- generation ----------------------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completion")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def _generate(self, request: web.Request, kind: str) -> web.StreamResponse:
        raw = await read_body(request)
        arrival = self.clock()  # server TTFT counts from here: the full body is in
        # Requests tend to arrive together (clients send the next one as a stream ends).
        # Yield once so every handler started in this pass of the loop timestamps its
        # arrival before any of them parses: the time one spends queued behind the others'
        # intake then counts in the server's TTFT, as the client sees it.
        await asyncio.sleep(0)
        if self.config.enable_admin:
            forced = self.faults.pick(request.headers.get(FORCE_ERROR_HEADER))
            if forced is not None:
                raise forced
        if self.faults.hang:
            await self.faults.wait_released()
        cfg = self.config
        parsed = parse_request(raw, kind, self.served_names, self.loras,
                               cfg.engine.max_model_len, cfg.default_max_tokens)
        plan = self.planner.plan(parsed.echo_text, parsed.max_tokens, parsed.ignore_eos,
                                 parsed.seed)
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        rid = f"{prefix}-{self._boot}{next(self._ids):x}"
        req = EngineRequest(rid, parsed.prompt_token_ids, plan.token_ids, plan.texts,
                            plan.finish_reason, parsed.lora)
        try:
            handle = self.driver.submit(req, arrival, parsed.stream)
        except ValueError as exc:
            raise ApiError(400, str(exc), "prompt") from None
        try:
            if parsed.stream:
                return await self._stream(request, parsed, handle)
            while not req.finished:
                await handle.wait(req.num_output)
            if req.status is RequestStatus.ABORTED:
                raise ApiError(500, "the request was aborted by the engine")
            body = (chat_response if kind == "chat" else completion_response)(
                rid, int(time.time()), parsed.model, "".join(req.output_texts[: req.num_output]),
                req.finish_reason, self._usage(req))
            return web.json_response(body)
        finally:
            if not req.finished:
                self.driver.abort(rid)

    @staticmethod
    def _usage(req: EngineRequest) -> dict[str, Any]:
        return usage_dict(req.prompt_len, req.num_output, req.num_cached_tokens or 0)

    async def _stream(
        self, request: web.Request, parsed: ParsedRequest, handle: RequestHandle
    ) -> web.StreamResponse:
        req = handle.req
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        direct = request.version == HttpVersion11 and request.transport is not None
        if direct:
            resp.enable_chunked_encoding()  # the sink frames its chunks itself
        writer = await resp.prepare(request)
        tpl = ChunkTemplate(parsed.kind, req.request_id, int(time.time()), parsed.model)
        stream = SseSink(req, tpl, request.transport if direct else None)
        try:
            if tpl.chat:
                await resp.write(tpl.role())
            if direct and writer is not None:
                send_headers = getattr(writer, "send_headers", None)  # aiohttp >= 3.11
                if send_headers is not None:
                    send_headers()  # out before the sink writes past aiohttp
                handle.sink = stream
            last = req.max_output - 1
            while True:
                # Woken when the sink declines: the request ended or the socket is backed up.
                await handle.wait(stream.sent)
                if stream.backed_up() and writer is not None:
                    await writer.drain()
                n = req.num_output
                texts = req.output_texts
                parts = [tpl.token(texts[k], req.finish_reason if k == last else None)
                         for k in range(stream.sent, n)]
                stream.sent = n
                if req.finished:
                    if req.status is RequestStatus.FINISHED:
                        if parsed.include_usage:
                            parts.append(tpl.usage(self._usage(req)))
                        parts.append(DONE)
                    await resp.write_eof(b"".join(parts))  # last chunk + terminator: one write
                    break
                if parts:
                    await resp.write(b"".join(parts))
        except ConnectionError:
            log.debug("client of %s went away", req.request_id)
        finally:
            handle.sink = None
        return resp

    # -- catalogue, health, metrics -------------------------------------------------------------
    async def models(self, request: web.Request) -> web.Response:
        created = int(time.time())
        cfg = self.config
        data = [{"id": name, "object": "model", "created": created, "owned_by": "vllm",
                 "root": cfg.engine.model, "parent": None,
                 "max_model_len": cfg.engine.max_model_len}
                for name in sorted(self.served_names)]
        data += [{"id": name, "object": "model", "created": created, "owned_by": "vllm",
                  "root": path, "parent": cfg.served_model_name}
                 for name, path in sorted(self.loras.items())]
        return web.json_response({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        if not self.faults.ready:
            raise ApiError(503, "not ready (set through /admin/health)")
        return web.Response(status=200)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self.registry), headers={"Content-Type": CONTENT_TYPE})

    async def version(self, request: web.Request) -> web.Response:
        from simulator import __version__

        return web.json_response({"version": __version__, "simulator": "lamplighter"})

    # -- LoRA --------------------------------------------------------------------------------
    async def load_lora(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
            raise ApiError(400, "'lora_name' and 'lora_path' must be non-empty strings")
        if name in self.loras or name in self.served_names:
            raise ApiError(400, f"The lora adapter '{name}' has already been loaded.", "lora_name")
        self.loras[name] = path
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def unload_lora(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        name = body.get("lora_name")
        if not isinstance(name, str) or name not in self.loras:
            raise ApiError(404, f"The lora adapter '{name}' cannot be found.", "lora_name")
        del self.loras[name]
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    async def reset_prefix_cache(self, request: web.Request) -> web.Response:
        self.engine.kv.reset()
        return web.Response(status=200)

    # -- admin -------------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        e, f = self.config.engine, self.faults
        out: dict[str, Any] = {k: getattr(e, k) for k in _TUNABLE_ENGINE}
        out.update(failure_rate=f.config.failure_rate, failure_types=f.config.failure_types,
                   ready=f.ready, hang=f.hang)
        return out

    async def admin_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await _json_object(request)
            for key, value in body.items():
                self._apply(key, value)
            log.info("admin config changed: %s", json.dumps(body))
        return web.json_response(self._settings())

    def _apply(self, key: str, value: Any) -> None:
        if key in _TUNABLE_ENGINE:
            typ = _TUNABLE_ENGINE[key]
            ok = (isinstance(value, int | float) and not isinstance(value, bool)
                  and (typ is float or isinstance(value, int)) and value >= 0
                  and (typ is float or value >= 1)
                  and (key not in ("speed_factor", "time_scale") or value > 0))
            if not ok:
                raise ApiError(400, f"{key} must be a non-negative {typ.__name__}", key)
            setattr(self.config.engine, key, typ(value))
        elif key == "failure_rate":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ApiError(400, "failure_rate must be a number in [0, 1]", key)
            self.faults.config.failure_rate = float(value)
        elif key == "failure_types":
            if not isinstance(value, list) or not all(v in FAILURE_TYPES for v in value):
                raise ApiError(400, f"failure_types must be a list of {sorted(FAILURE_TYPES)}",
                               key)
            self.faults.config.failure_types = list(value)
        else:
            raise ApiError(400, f"unknown setting {key!r}", key)

    async def admin_health(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        ready = body.get("ready")
        if not isinstance(ready, bool):
            raise ApiError(400, "'ready' must be a boolean", "ready")
        self.faults.ready = ready
        log.info("admin: ready=%s", ready)
        return web.json_response(self._settings())

    async def admin_hang(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise ApiError(400, "'enabled' must be a boolean", "enabled")
        self.faults.set_hang(enabled)
        log.info("admin: hang=%s", enabled)
        return web.json_response(self._settings())

    async def admin_stats(self, request: web.Request) -> web.Response:
        s, e = self.engine.stats, self.engine
        body = {"steps": s.steps, "running": len(e.running), "waiting": len(e.waiting),
                "kv_usage": e.kv.usage, "overruns": list(s.recent_overruns),
                "ttft": [list(x) for x in s.recent_ttft]}
        if request.query.get("reset"):
            s.reset_recent()
        return web.json_response(body)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await read_body(request))
    except (ValueError, RecursionError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes an OpenAI error object; nothing escapes as a traceback page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(error_body(exc.status, exc.reason), status=exc.status)
    except RequestPayloadError as exc:  # the body broke off or could not be read
        return web.json_response(error_body(400, f"cannot read the request body: {exc}"),
                                 status=400)
    except ConnectionError:
        raise
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response(error_body(500, f"internal error: {type(exc).__name__}"),
                                 status=500)


SIM_KEY = web.AppKey("simulator", Simulator)


def app_runner(app: web.Application) -> web.AppRunner:
    """The runner every simulator serves through (the CLI and the tests alike).

    Request bodies are taken as sent, as vLLM takes them: with aiohttp's automatic
    decompression a body whose ``content-encoding`` did not match it failed inside the
    parser, as a 500 or a plain-text 400 instead of an OpenAI error.
    """
    return web.AppRunner(app, handler_cancellation=True, access_log=None,
                         auto_decompress=False)


def build_app(config: ServerConfig, clock: Callable[[], float] = time.monotonic) -> web.Application:
    """The application for one pod; the engine loop runs between startup and cleanup."""
    sim = Simulator(config, clock)
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024 * 1024)
    app[SIM_KEY] = sim

    async def add_identity(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(sim.identity_headers())

    async def start(app: web.Application) -> None:
        sim.driver.start()

    async def stop(app: web.Application) -> None:
        await sim.driver.stop()

    app.on_response_prepare.append(add_identity)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    r = app.router
    r.add_post("/v1/completions", sim.completions)
    r.add_post("/v1/chat/completions", sim.chat)
    r.add_get("/v1/models", sim.models)
    r.add_get("/health", sim.health)
    r.add_get("/metrics", sim.metrics)
    r.add_get("/version", sim.version)
    r.add_post("/v1/load_lora_adapter", sim.load_lora)
    r.add_post("/v1/unload_lora_adapter", sim.unload_lora)
    r.add_post("/reset_prefix_cache", sim.reset_prefix_cache)
    if config.enable_admin:
        r.add_route("*", "/admin/config", sim.admin_config)
        r.add_post("/admin/health", sim.admin_health)
        r.add_post("/admin/hang", sim.admin_hang)
        r.add_get("/admin/stats", sim.admin_stats)
    return app
