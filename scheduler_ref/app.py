"""Wires the process together: datastore, discovery, scraper, ext_proc, health, metrics.

Readiness for other processes: the ``serving`` JSON log line (with the bound ports), then gRPC
health SERVING on ``--grpc-health-port`` once discovery is synced and one endpoint answered a
metrics scrape; ``GET /metrics`` on ``--metrics-port`` answers from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import time
from collections.abc import Callable, Sequence

import grpc
from aiohttp import web
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2_grpc

from scheduler_ref.cli import Settings
from scheduler_ref.config import SchedulerConfig
from scheduler_ref.datastore import Datastore
from scheduler_ref.discovery.file import FileWatcher
from scheduler_ref.errors import StartupError
from scheduler_ref.extproc import ExtProcServicer
from scheduler_ref.health import Health
from scheduler_ref.metrics import EppMetrics, metrics_app
from scheduler_ref.plugins.datalayer import EngineMetrics
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.scrape import MetricNames, Scraper, ScrapeTarget
from scheduler_ref.types import Endpoint

__all__ = ["metrics_reading", "serve"]

log = logging.getLogger("scheduler_ref")

# One listener per port: without this gRPC sets SO_REUSEPORT and a second process would
# silently share a port that is in use.
_GRPC_OPTIONS = [("grpc.so_reuseport", 0)]


def metrics_reading(
    s: Settings, config: SchedulerConfig
) -> tuple[ScrapeTarget, Callable[[Endpoint], MetricNames]]:
    """The scrape target and per-endpoint metric specs: config parameters first, then the
    (deprecated upstream) flags as defaults. StartupError names a malformed metric flag."""
    source, extractors = config.data_layer.sources[0]
    target = ScrapeTarget(
        scheme=source.scheme if "scheme" in source.explicit else (s.metrics_scheme or "http"),
        path=source.path if "path" in source.explicit else (s.metrics_path or "/metrics"),
        insecure_skip_verify=source.insecure_skip_verify,
    )
    extractor = extractors[0]
    engines: dict[str, MetricNames] = {}
    for name, engine in extractor.engines.items():
        if name == "vllm" and name not in extractor.configured:
            engine = EngineMetrics("vllm", s.queued_metric, s.running_metric, s.kv_cache_metric,
                                   s.lora_metric, s.cache_info_metric)
        try:
            engines[name] = MetricNames.from_engine(engine)
        except ValueError as e:
            where = "a metric flag" if name == "vllm" else f"engine {name!r}"
            raise StartupError(f"{where}: {e}") from None

    def names_for(e: Endpoint) -> MetricNames:
        return engines[extractor.engine_for(e.labels).name]

    return target, names_for


def _probe(host: str, port: int, flag: str) -> None:
    """Bind once with a plain socket so a busy port is reported in one line (gRPC core would
    also print its own log line)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as e:
            raise StartupError(f"{flag}: cannot listen on {host}:{port}: "
                               f"{(e.strerror or str(e)).lower()}") from None


def _bind(server: grpc.aio.Server, address: str, flag: str,
          creds: grpc.ServerCredentials | None = None) -> int:
    host, _, port_text = address.rpartition(":")
    _probe(host.strip("[]"), int(port_text), flag)
    try:
        port = (server.add_secure_port(address, creds) if creds is not None
                else server.add_insecure_port(address))
    except RuntimeError as e:
        raise StartupError(f"{flag}: cannot listen on {address}: {e}") from None
    if port == 0:
        raise StartupError(f"{flag}: cannot listen on {address} (in use or not a local "
                           "address)")
    return port


async def _start_grpc(s: Settings, servicer: ExtProcServicer, health: Health) -> tuple[
        grpc.aio.Server, grpc.aio.Server, int, int]:
    creds = None
    if s.secure_serving:
        from scheduler_ref.tls import load_or_create

        key, crt = load_or_create(s.cert_path)
        creds = grpc.ssl_server_credentials([(key, crt)])
    ext = grpc.aio.server(options=_GRPC_OPTIONS)
    pb_grpc.add_ExternalProcessorServicer_to_server(servicer, ext)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, ext)
    port = _bind(ext, f"{s.host}:{s.grpc_port}", "--grpc-port", creds)
    hsrv = grpc.aio.server(options=_GRPC_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, hsrv)
    hport = _bind(hsrv, f"{s.host}:{s.grpc_health_port}", "--grpc-health-port")
    await ext.start()
    await hsrv.start()
    return ext, hsrv, port, hport


async def _start_metrics(s: Settings, metrics: EppMetrics) -> tuple[web.AppRunner, int]:
    _probe(s.host, s.metrics_port, "--metrics-port")
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, s.host, s.metrics_port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise StartupError(f"--metrics-port: cannot listen on {s.host}:{s.metrics_port}: "
                           f"{(e.strerror or str(e)).lower()}") from None
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else s.metrics_port
    return runner, port


async def _watch_state(
    datastore: Datastore, scheduler: Scheduler, metrics: EppMetrics, health: Health
) -> None:
    """Flip readiness and refresh pool gauges (not on the request path)."""
    ticks = 0
    while True:
        await health.set_ready(datastore.synced and datastore.scraped_once
                               and bool(datastore.keys()))
        if ticks % 10 == 0:
            snap = datastore.snapshot()
            metrics.pool_state(snap, scheduler.fresh(snap, time.monotonic()),
                               scheduler.prefix_index_size())
        ticks += 1
        await asyncio.sleep(0.05)


async def serve(s: Settings, config: SchedulerConfig,
                initial: Sequence[Endpoint] | None = None) -> None:
    """Run until SIGTERM / SIGINT. ``initial``: the endpoints of ``--endpoints`` or the
    file-discovery file (already validated by the caller); None: Kubernetes discovery.
    StartupError when a port, TLS material or a metric flag is unusable."""
    target, names_for = metrics_reading(s, config)
    clock = time.monotonic
    datastore = Datastore()
    rng = random.Random(s.seed) if s.seed is not None else random.Random()
    scheduler = Scheduler(config, staleness=s.metrics_staleness_threshold, rng=rng)
    datastore.on_change(scheduler.endpoints_changed)
    metrics = EppMetrics(s.pool_name or "static")
    health = Health()
    await health.start()
    servicer = ExtProcServicer(datastore, scheduler, metrics, clock)
    ext, hsrv, port, hport = await _start_grpc(s, servicer, health)
    try:
        runner, mport = await _start_metrics(s, metrics)
    except StartupError:
        await ext.stop(None)
        await hsrv.stop(None)
        raise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    kube = None
    watcher_file: FileWatcher | None = None
    discovery = config.data_layer.discovery
    if initial is not None:
        datastore.set_endpoints(initial)
        if discovery is not None and discovery.watch:
            watcher_file = FileWatcher(discovery.path, datastore.set_endpoints)
            watcher_file.start(loop)
    else:
        from scheduler_ref.discovery.kube import KubeDiscovery

        assert s.pool_name
        kube = KubeDiscovery(datastore, s.pool_name, s.pool_namespace, s.pool_group,
                             kubeconfig=s.kubeconfig)
        kube.start(loop)
    scraper = Scraper(datastore, clock, interval=s.refresh_metrics_interval,
                      timeout=s.scrape_timeout, names=names_for, target=target)
    await scraper.start()
    watcher = loop.create_task(_watch_state(datastore, scheduler, metrics, health))
    log.info("serving", extra={"fields": {
        "host": s.host, "grpc_port": port, "grpc_health_port": hport, "metrics_port": mport,
        "secure_serving": s.secure_serving, "endpoints": sorted(datastore.keys()),
        "pool": s.pool_name, "config": config.source,
        "endpoints_file": discovery.path if discovery is not None else None}})
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        watcher.cancel()
        if kube is not None:
            kube.stop()
        if watcher_file is not None:
            await watcher_file.stop()
        await scraper.stop()
        await ext.stop(grace=1.0)
        await hsrv.stop(grace=None)
        await runner.cleanup()
