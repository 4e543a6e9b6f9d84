"""``python -m scheduler_ref`` / ``scheduler-ref``: parse flags, load config, serve.

Exit status 2 with one line on stderr for bad flags, a bad config or endpoints file, and
anything that stops startup (port in use, TLS material, openssl), as the EPP refuses to start.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from scheduler_ref.cli import Settings, parse_args
from scheduler_ref.config import (
    DEFAULT_CONFIG,
    ConfigError,
    SchedulerConfig,
    load_config,
    load_config_file,
)
from scheduler_ref.discovery.file import DiscoveryFileError, load_endpoints_file
from scheduler_ref.discovery.static import parse_endpoints
from scheduler_ref.errors import StartupError
from scheduler_ref.logs import setup_logging
from scheduler_ref.types import Endpoint

__all__ = ["main"]

log = logging.getLogger("scheduler_ref")


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop (optional dependency) when asked or, with ``auto``, when installed: it cuts
    the event loop's cost per ext_proc message; grpc.aio runs on it."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise StartupError("--event-loop uvloop: not installed") from None
        return None
    return uvloop.new_event_loop


def _fail(message: str) -> int:
    print(f"scheduler-ref: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _initial_endpoints(settings: Settings, config: SchedulerConfig) -> list[Endpoint] | None:
    """Exactly one source names the pool: --endpoints, --pool-name (Kubernetes), or the
    config's file-discovery. None means Kubernetes discovery. ValueError explains."""
    discovery = config.data_layer.discovery
    given = [name for name, present in (
        ("--endpoints", settings.endpoints is not None),
        ("--pool-name", bool(settings.pool_name)),
        (f"the config's file-discovery ({discovery.path})" if discovery else "",
         discovery is not None)) if present]
    if not given:
        raise ValueError("no endpoints: give --endpoints ip:port,..., --pool-name, or a config "
                         "with dataLayer.discovery (file-discovery)")
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} both name the endpoints: give only one")
    if settings.endpoints is not None:
        try:
            return parse_endpoints(settings.endpoints)
        except ValueError as e:
            raise ValueError(f"--endpoints: {e}") from None
    if discovery is not None:
        try:
            return load_endpoints_file(discovery.path)
        except DiscoveryFileError as e:
            raise ValueError(f"endpoints file error: {e}") from None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(settings.verbosity)
    if settings.ignored:
        log.info("ignoring flags scheduler_ref does not use",
                 extra={"fields": {"flags": settings.ignored}})
    try:
        if settings.config_file:
            config = load_config_file(settings.config_file)
        elif settings.config_text:
            config = load_config(settings.config_text, "<config-text>")
        else:
            config = load_config(DEFAULT_CONFIG, "<default>")
    except ConfigError as e:
        return _fail(f"config error: {e}")
    try:
        initial = _initial_endpoints(settings, config)
    except ValueError as e:
        return _fail(str(e))
    from scheduler_ref.app import serve

    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings, config, initial))
    except KeyboardInterrupt:
        pass
    except StartupError as e:
        return _fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
