"""CLI: ``python -m simulator --model NAME --port PORT --pod-name NAME ...`` (or ``llm-sim``).

Starts one simulated vLLM pod. Readiness: the process logs ``simulator ready ... port=N`` to
stderr once it accepts connections, and ``GET /health`` answers 200 from then on. SIGTERM and
SIGINT stop it cleanly. The event loop is uvloop when installed, else the stdlib's with
sub-millisecond timers (``--loop``; see ``simulator.eventloop``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from aiohttp import web

from simulator.config import FAILURE_TYPES, EngineConfig, FaultConfig, ServerConfig
from simulator.eventloop import loop_factory
from simulator.server import SIM_KEY, app_runner, build_app

__all__ = ["ArgsError", "check_args", "main", "parse_args"]

log = logging.getLogger("simulator")

_EPILOG = """\
step time (ms) = (step-base-ms + prefill-ms-per-token * prefill tokens
                  + decode-ms-per-seq * decode sequences) * speed-factor * time-scale

admin endpoints (runtime changes for the reliability suites; only with --enable-admin):
  GET/POST /admin/config  {"speed_factor": 2, "step_base_ms": 20, "failure_rate": 0.1, ...}
  POST /admin/health      {"ready": false}   /health answers 503 until set back to true
  POST /admin/hang        {"enabled": true}  new generation requests hang until disabled
  GET  /admin/stats       recent step overruns and server TTFTs (?reset=1 clears them)
request header:
  x-sim-force-error: 429|503|500|400|404|<failure type>  fails that one request
"""


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _int(text: str) -> int:
    return int(_number(text, int))


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _probability(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], got {text!r}")
    return value


class ArgsError(ValueError):
    """Simulator flags that make no sense; the message names flag and value."""


class _OneLineParser(argparse.ArgumentParser):
    """Bad flags or values: one line on stderr naming flag and value, exit 2 (no usage dump);
    or :class:`ArgsError` when ``raise_errors`` (launchers checking flags before spawning)."""

    raise_errors = False

    def error(self, message: str) -> NoReturn:
        if self.raise_errors:
            raise ArgsError(message)
        self.exit(2, f"{self.prog}: error: {message}\n")


def check_args(argv: Sequence[str]) -> None:
    """Raise :class:`ArgsError` if ``python -m simulator ARGV`` would refuse its flags.

    The one home of the flags' valid ranges, for launchers (``lamplighter up``) that must
    refuse bad values before they start anything.
    """
    parser = _parser()
    parser.raise_errors = True
    parser.parse_args(argv)


def _failure_types(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in FAILURE_TYPES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; known: {','.join(FAILURE_TYPES)}")
    return kinds


def _parser() -> _OneLineParser:
    e, f, s = EngineConfig(), FaultConfig(), ServerConfig()
    p = _OneLineParser(
        prog="llm-sim", description="vLLM-compatible model-server simulator (lamplighter).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("identity and serving")
    a = g.add_argument
    a("--model", default=e.model, help=f"model name (default: {e.model})")
    a("--served-model-name", nargs="+", default=[],
      help="names clients may use (default: the --model name)")
    a("--host", default=s.host, help=f"listen address (default: {s.host})")
    a("--port", type=_port, default=s.port, help=f"listen port; 0 = ephemeral (default: {s.port})")
    a("--pod-name", default=os.environ.get("POD_NAME", s.pod_name),
      help=f"x-inference-pod header (default: env POD_NAME, else {s.pod_name})")
    a("--namespace", default=os.environ.get("POD_NAMESPACE", s.namespace),
      help=f"x-inference-namespace header (default: env POD_NAMESPACE, else {s.namespace})")
    a("--mode", choices=["random", "echo"], default=s.mode,
      help=f"random words, or echo the prompt's tokens (default: {s.mode})")
    a("--seed", type=_int, default=s.seed, help=f"seed of random mode (default: {s.seed})")
    a("--default-max-tokens", type=_positive_int, default=s.default_max_tokens,
      help=f"output tokens when a request sets no max_tokens (default: {s.default_max_tokens})")
    a("--eos-probability", type=_probability, default=s.eos_probability,
      help="per-token chance random mode stops early unless ignore_eos; 0 = always "
           f"max_tokens (default: {s.eos_probability})")
    a("--lora-modules", nargs="*", default=[], metavar="NAME=PATH",
      help="LoRA adapters loaded at start (default: none)")
    a("--log-level", default="INFO", type=str.upper,
      choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
      help="stderr log level (default: INFO)")
    a("--enable-admin", action="store_true",
      default=os.environ.get("LLM_SIM_ENABLE_ADMIN", "") in ("1", "true"),
      help="serve /admin/* and honour x-sim-force-error: any client could then degrade "
           "this pod, so only test harnesses turn it on (default: off; env "
           "LLM_SIM_ENABLE_ADMIN=1)")
    a("--loop", choices=["auto", "uvloop", "asyncio"], default=s.loop,
      help="event loop: uvloop when installed (auto), or the stdlib's with sub-millisecond "
           f"timers (default: {s.loop})")
    g = p.add_argument_group("engine (vLLM scheduler and KV cache)")
    a = g.add_argument
    a("--max-num-seqs", type=_positive_int, default=e.max_num_seqs,
      help=f"max sequences in a batch, count (default: {e.max_num_seqs})")
    a("--max-num-batched-tokens", type=_positive_int, default=e.max_num_batched_tokens,
      help=f"per-step token budget (chunked prefill), tokens (default: "
           f"{e.max_num_batched_tokens})")
    a("--block-size", type=_positive_int, default=e.block_size,
      help=f"KV block size, tokens (default: {e.block_size})")
    a("--num-gpu-blocks", type=_positive_int, default=e.num_gpu_blocks,
      help=f"KV capacity, blocks (default: {e.num_gpu_blocks}, i.e. "
           f"{e.num_gpu_blocks * e.block_size} tokens)")
    a("--max-model-len", type=_positive_int, default=e.max_model_len,
      help=f"context length, tokens (default: {e.max_model_len})")
    a("--max-loras", type=_positive_int, default=e.max_loras,
      help=f"distinct LoRA adapters per batch, count (default: {e.max_loras})")
    g = p.add_argument_group("latency model")
    a = g.add_argument
    a("--step-base-ms", type=_non_negative, default=e.step_base_ms,
      help=f"fixed cost of every step, ms (default: {e.step_base_ms})")
    a("--prefill-ms-per-token", type=_non_negative, default=e.prefill_ms_per_token,
      help=f"cost per prefilled (uncached) token, ms (default: {e.prefill_ms_per_token})")
    a("--decode-ms-per-seq", type=_non_negative, default=e.decode_ms_per_seq,
      help=f"cost per decoding sequence in a step, ms (default: {e.decode_ms_per_seq})")
    a("--speed-factor", type=_positive, default=e.speed_factor,
      help=f"per-pod multiplier of step time, 1.2 = 20%% slower (default: {e.speed_factor})")
    a("--time-scale", type=_positive, default=e.time_scale,
      help=f"multiplier of all modelled time, 0.1 = 10x faster tests (default: {e.time_scale})")
    g = p.add_argument_group("faults")
    a = g.add_argument
    a("--failure-rate", type=_probability, default=f.failure_rate,
      help=f"probability a generation request fails, 0..1 (default: {f.failure_rate})")
    a("--failure-types", type=_failure_types, default=f.failure_types,
      help=f"comma list drawn from {','.join(FAILURE_TYPES)} "
           f"(default: {','.join(f.failure_types)})")
    return p


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    """Flags (and env POD_NAME / POD_NAMESPACE) to a ``ServerConfig``."""
    ns = _parser().parse_args(argv)
    logging.basicConfig(level=ns.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = EngineConfig(
        model=ns.model, max_num_seqs=ns.max_num_seqs,
        max_num_batched_tokens=ns.max_num_batched_tokens, block_size=ns.block_size,
        num_gpu_blocks=ns.num_gpu_blocks, max_model_len=ns.max_model_len,
        step_base_ms=ns.step_base_ms, prefill_ms_per_token=ns.prefill_ms_per_token,
        decode_ms_per_seq=ns.decode_ms_per_seq, speed_factor=ns.speed_factor,
        time_scale=ns.time_scale, max_loras=ns.max_loras)
    return ServerConfig(
        engine=engine, faults=FaultConfig(ns.failure_rate, ns.failure_types),
        served_model_names=ns.served_model_name, host=ns.host, port=ns.port,
        pod_name=ns.pod_name, namespace=ns.namespace, mode=ns.mode, seed=ns.seed,
        default_max_tokens=ns.default_max_tokens, eos_probability=ns.eos_probability,
        lora_modules=ns.lora_modules, loop=ns.loop, enable_admin=ns.enable_admin)


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT."""
    app = build_app(config)
    runner = app_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=2048)
    await site.start()
    port = config.port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        port = server.sockets[0].getsockname()[1]
    app[SIM_KEY].port = port
    # Everything allocated so far (the KV block pool above all) lives as long as the process:
    # keep it out of the cyclic collector's full passes, which would otherwise stall the loop.
    gc.collect()
    gc.freeze()
    app[SIM_KEY].driver.manage_gc = True  # and collect between steps, not at their ends
    e = config.engine
    log.info("simulator ready model=%s pod=%s namespace=%s host=%s port=%d max_num_seqs=%d "
             "num_gpu_blocks=%d block_size=%d speed_factor=%g time_scale=%g",
             config.served_model_name, config.pod_name, config.namespace, config.host, port,
             e.max_num_seqs, e.num_gpu_blocks, e.block_size, e.speed_factor, e.time_scale)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("simulator stopping port=%d", port)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        name, factory = loop_factory(config.loop)
    except ImportError:
        log.error("--loop uvloop: uvloop is not installed")
        return 1
    log.debug("event loop: %s", name)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config))
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", config.host, config.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
