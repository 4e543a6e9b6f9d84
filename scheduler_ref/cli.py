"""Command-line flags, compatible with the EPP's (Go ``flag`` syntax: -name, --name=value).

Flags the chart passes that scheduler_ref has no use for are accepted and ignored with a log
line, so the image can replace the EPP image unchanged. v0.2 charts used camelCase names.

Defaults that differ from a plain Go EPP on purpose: ``--host`` is 127.0.0.1 (the EPP listens
on every interface; scheduler_ref's standalone use is beside Envoy on one host, so it does not
expose the ext_proc port to the network unless asked: the image passes ``--host=0.0.0.0``).
``--secure-serving`` defaults to true as in the EPP.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from scheduler_ref.durations import parse_duration

__all__ = ["Settings", "parse_args"]

_NUMBER = re.compile(r"^-\d")


def _bool(text: str) -> bool:
    v = text.strip().lower()
    if v in ("1", "t", "true", "yes"):
        return True
    if v in ("0", "f", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@dataclass
class Settings:
    config_file: str | None
    config_text: str | None
    endpoints: str | None
    pool_name: str | None
    pool_namespace: str
    pool_group: str
    host: str
    grpc_port: int
    grpc_health_port: int
    metrics_port: int
    refresh_metrics_interval: float
    metrics_staleness_threshold: float
    scrape_timeout: float
    secure_serving: bool
    cert_path: str | None
    kv_cache_metric: str
    queued_metric: str
    running_metric: str
    lora_metric: str
    cache_info_metric: str
    metrics_path: str | None
    metrics_scheme: str | None
    seed: int | None
    verbosity: int
    kubeconfig: str | None
    ignored: list[str]
    event_loop: str = "auto"


class _Parser(argparse.ArgumentParser):
    """Bad flags: one line on stderr and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="scheduler-ref", allow_abbrev=False,
        description="Reference endpoint picker (ext_proc) for llm-d / Gateway API Inference "
                    "Extension pools.")
    a = p.add_argument
    a("--config-file", "--configFile", dest="config_file")
    a("--config-text", "--configText", dest="config_text")
    a("--endpoints", help="static endpoints ip:port,... (instead of a Kubernetes pool)")
    a("--pool-name", "--poolName", dest="pool_name")
    a("--pool-namespace", "--poolNamespace", dest="pool_namespace",
      default=os.environ.get("NAMESPACE", "default"))
    a("--pool-group", "--poolGroup", dest="pool_group", default="inference.networking.k8s.io")
    a("--host", "--bind-address", dest="host", default="127.0.0.1",
      help="address for every port (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    a("--grpc-port", "--grpcPort", dest="grpc_port", type=int, default=9002)
    a("--grpc-health-port", "--grpcHealthPort", dest="grpc_health_port", type=int, default=9003)
    a("--metrics-port", "--metricsPort", dest="metrics_port", type=int, default=9090)
    a("--refresh-metrics-interval", "--refreshMetricsInterval", dest="refresh_metrics_interval",
      type=_duration, default=0.05)
    a("--metrics-staleness-threshold", "--metricsStalenessThreshold",
      dest="metrics_staleness_threshold", type=_duration, default=2.0)
    a("--scrape-timeout", dest="scrape_timeout", type=_duration, default=1.0)
    a("--secure-serving", "--secureServing", dest="secure_serving", nargs="?", const=True,
      type=_bool, default=None,
      help="TLS on the ext_proc port (default true, as the EPP; env "
           "SCHEDULER_REF_SECURE_SERVING sets the default)")
    a("--cert-path", "--certPath", dest="cert_path",
      help="directory with tls.crt and tls.key; self-signed when absent")
    a("--kv-cache-usage-percentage-metric", "--kvCacheUsagePercentageMetric",
      dest="kv_cache_metric", default="vllm:kv_cache_usage_perc")
    a("--total-queued-requests-metric", "--totalQueuedRequestsMetric", dest="queued_metric",
      default="vllm:num_requests_waiting")
    a("--total-running-requests-metric", "--totalRunningRequestsMetric", dest="running_metric",
      default="vllm:num_requests_running")
    a("--lora-info-metric", "--loraInfoMetric", dest="lora_metric",
      default="vllm:lora_requests_info")
    a("--cache-info-metric", "--cacheInfoMetric", dest="cache_info_metric",
      default="vllm:cache_config_info")
    a("--model-server-metrics-path", "--modelServerMetricsPath", dest="metrics_path",
      default=None, help="default of metrics-data-source's path (/metrics)")
    a("--model-server-metrics-scheme", "--modelServerMetricsScheme", dest="metrics_scheme",
      default=None, choices=["http", "https"],
      help="default of metrics-data-source's scheme (http)")
    a("--kubeconfig", dest="kubeconfig", default=None)
    a("--seed", type=int, default=None, help="seed the pickers' random tie-break (replays)")
    a("--event-loop", dest="event_loop", choices=["auto", "asyncio", "uvloop"], default="auto",
      help="uvloop when installed (auto), or the stdlib's asyncio loop")
    a("-v", "--v", dest="verbosity", type=int, nargs="?", const=1, default=0)
    return p


def _normalise(argv: Sequence[str]) -> list[str]:
    """Go accepts ``-name``; argparse wants ``--name`` for long options."""
    out = []
    for tok in argv:
        if tok.startswith("-") and not tok.startswith("--") and len(tok) > 2 \
                and not _NUMBER.match(tok):
            tok = "-" + tok
        out.append(tok)
    return out


def parse_args(argv: Sequence[str]) -> Settings:
    """Parse flags; exits 2 (argparse) on bad values of known flags."""
    parser = _parser()
    ns, unknown = parser.parse_known_args(_normalise(argv))
    if ns.secure_serving is None:
        try:
            ns.secure_serving = _bool(os.environ.get("SCHEDULER_REF_SECURE_SERVING", "true"))
        except argparse.ArgumentTypeError as e:
            parser.error(f"SCHEDULER_REF_SECURE_SERVING: {e}")
    if ns.config_file and ns.config_text:
        parser.error("--config-file and --config-text are mutually exclusive")
    return Settings(
        config_file=ns.config_file, config_text=ns.config_text, endpoints=ns.endpoints,
        pool_name=ns.pool_name, pool_namespace=ns.pool_namespace, pool_group=ns.pool_group,
        host=ns.host, grpc_port=ns.grpc_port, grpc_health_port=ns.grpc_health_port,
        metrics_port=ns.metrics_port, refresh_metrics_interval=ns.refresh_metrics_interval,
        metrics_staleness_threshold=ns.metrics_staleness_threshold,
        scrape_timeout=ns.scrape_timeout, secure_serving=ns.secure_serving,
        cert_path=ns.cert_path, kv_cache_metric=ns.kv_cache_metric,
        queued_metric=ns.queued_metric, running_metric=ns.running_metric,
        lora_metric=ns.lora_metric, cache_info_metric=ns.cache_info_metric,
        metrics_path=ns.metrics_path, metrics_scheme=ns.metrics_scheme, seed=ns.seed,
        verbosity=ns.verbosity or 0, kubeconfig=ns.kubeconfig, ignored=list(unknown),
        event_loop=ns.event_loop,
    )
