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
import time

import grpc
from aiohttp import web
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2_grpc

from scheduler_ref.cli import Settings
from scheduler_ref.config import SchedulerConfig
from scheduler_ref.datastore import Datastore
from scheduler_ref.discovery.static import parse_endpoints
from scheduler_ref.extproc import ExtProcServicer
from scheduler_ref.health import Health
from scheduler_ref.metrics import EppMetrics, metrics_app
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.scrape import MetricNames, Scraper

__all__ = ["serve"]

log = logging.getLogger("scheduler_ref")


def _metric_names(s: Settings) -> MetricNames:
    return MetricNames(waiting=s.queued_metric, running=s.running_metric,
                       kv_usage=s.kv_cache_metric, lora_info=s.lora_metric,
                       cache_info=s.cache_info_metric)


async def _start_grpc(s: Settings, servicer: ExtProcServicer, health: Health) -> tuple[
        grpc.aio.Server, grpc.aio.Server, int, int]:
    ext = grpc.aio.server()
    pb_grpc.add_ExternalProcessorServicer_to_server(servicer, ext)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, ext)
    address = f"{s.host}:{s.grpc_port}"
    if s.secure_serving:
        from scheduler_ref.tls import load_or_create

        key, crt = load_or_create(s.cert_path)
        port = ext.add_secure_port(address, grpc.ssl_server_credentials([(key, crt)]))
    else:
        port = ext.add_insecure_port(address)
    hsrv = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, hsrv)
    hport = hsrv.add_insecure_port(f"{s.host}:{s.grpc_health_port}")
    await ext.start()
    await hsrv.start()
    return ext, hsrv, port, hport


async def _start_metrics(s: Settings, metrics: EppMetrics) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, s.host, s.metrics_port)
    await site.start()
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


async def serve(s: Settings, config: SchedulerConfig) -> None:
    """Run until SIGTERM / SIGINT."""
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
    runner, mport = await _start_metrics(s, metrics)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    kube = None
    if s.endpoints is not None:
        datastore.set_endpoints(parse_endpoints(s.endpoints))
    else:
        from scheduler_ref.discovery.kube import KubeDiscovery

        assert s.pool_name
        kube = KubeDiscovery(datastore, s.pool_name, s.pool_namespace, s.pool_group,
                             kubeconfig=s.kubeconfig)
        kube.start(loop)
    scraper = Scraper(datastore, clock, interval=s.refresh_metrics_interval,
                      timeout=s.scrape_timeout, names=_metric_names(s),
                      path=s.metrics_path, scheme=s.metrics_scheme)
    await scraper.start()
    watcher = loop.create_task(_watch_state(datastore, scheduler, metrics, health))
    log.info("serving", extra={"fields": {
        "host": s.host, "grpc_port": port, "grpc_health_port": hport, "metrics_port": mport,
        "secure_serving": s.secure_serving, "endpoints": sorted(datastore.keys()),
        "pool": s.pool_name, "config": config.source}})
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        watcher.cancel()
        if kube is not None:
            kube.stop()
        await scraper.stop()
        await ext.stop(grace=1.0)
        await hsrv.stop(grace=None)
        await runner.cleanup()
