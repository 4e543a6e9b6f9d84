"""``python -m scheduler_ref`` / ``scheduler-ref``: parse flags, load config, serve.

Exit status 2 for bad flags or a bad config (one line on stderr), as the EPP refuses to start.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from scheduler_ref.cli import parse_args
from scheduler_ref.config import DEFAULT_CONFIG, ConfigError, load_config, load_config_file
from scheduler_ref.discovery.static import parse_endpoints
from scheduler_ref.logs import setup_logging

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
            raise SystemExit("scheduler-ref: --event-loop uvloop: not installed") from None
        return None
    return uvloop.new_event_loop


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
        if settings.endpoints is not None:
            parse_endpoints(settings.endpoints)
    except ConfigError as e:
        print(f"scheduler-ref: config error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"scheduler-ref: --endpoints: {e}", file=sys.stderr)
        return 2
    from scheduler_ref.app import serve

    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings, config))
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        print(f"scheduler-ref: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
