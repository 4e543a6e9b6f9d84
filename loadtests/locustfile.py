"""Locust entry for lamplighter runs: ``locust -f loadtests/locustfile.py --ll-spec JSON``.

Normally started by ``loadtests.api.run_load`` / ``lamplighter load``. The spec travels as a
custom argument, which Locust forwards to every worker (``--processes`` or remote
``--worker``), so workers need nothing but the master's address. Only the master (or the
single local process) writes to ``--ll-out``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import pacing
from loadtests.dashboard import install_dashboard
from loadtests.runconfig import spec_from_json
from loadtests.shapes import LLMShape
from loadtests.tether import tie_forked_children
from loadtests.users import LLMUser

__all__ = ["LLMShape", "LLMUser"]

log = logging.getLogger("lamplighter")
tie_forked_children()  # imported by the master before it forks its --processes workers


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    parser.add_argument(
        "--ll-spec",
        type=str,
        default="",
        help="lamplighter LoadSpec as JSON",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--ll-out", type=str, default="", help="lamplighter output folder", include_in_web_ui=False
    )


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner):
        pacing.register(environment, pacing.install(environment, None, None))
        return
    if not options or not options.ll_spec:
        raise SystemExit("lamplighter: --ll-spec is required")
    spec = spec_from_json(options.ll_spec)
    coordinator = pacing.install(environment, spec, Path(options.ll_out or "."))
    assert isinstance(coordinator, pacing.Coordinator)
    pacing.register(environment, coordinator)
    install_dashboard(environment, coordinator)
