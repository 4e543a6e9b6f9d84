"""The shared pacer and sample sink across Locust processes.  (Locust side.)

The master (or the single local process) owns one ``Pacer`` and the raw-sample file. Users
on the local runner call it directly; users on workers (``--processes N`` or remote
``--worker``) ask over Locust's custom messages (``ll_acquire`` -> ``ll_grant``) and ship
finished samples back (``ll_samples``), so request indices, prompt order and the request cap
are global and exact, and the master ends the run once every granted request has reported.
Due times are unix seconds set by the master; workers on other machines need NTP-synced clocks.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.arrivals import Pacer, Ticket
from loadtests.runconfig import LoadSpec
from loadtests.samples import Sample, append_samples, sample_from_dict
from loadtests.stats import summarize, summary_csv

__all__ = ["Coordinator", "WorkerLink", "active", "install", "register"]

log = logging.getLogger("lamplighter.pacing")
FLUSH_S = 0.05
HARD_STOP_GRACE_S = 5.0


class Coordinator:
    """Master/local side: hands out tickets, collects samples, ends the run."""

    def __init__(self, env: Environment, spec: LoadSpec, out_dir: Path) -> None:
        self.env = env
        self.spec = spec
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.samples_path = out_dir / "samples.jsonl"
        self.samples_path.write_text("")
        self.samples: list[Sample] = []
        self.pacer: Pacer | None = None
        self.finished = False
        self.warned_late = False
        self.cpu_warning = False
        self.invalid_reasons: list[str] = []
        env.events.test_start.add_listener(self._on_test_start)
        env.events.cpu_warning.add_listener(self._on_cpu_warning)
        if isinstance(env.runner, MasterRunner):
            env.runner.register_message("ll_acquire", self._on_acquire_msg)
            env.runner.register_message("ll_samples", self._on_samples_msg)

    def _on_cpu_warning(self, **_kw: Any) -> None:
        self.cpu_warning = True

    def _on_test_start(self, **_kw: Any) -> None:
        if self.pacer is not None:
            return
        # open loop: give (remote) users a moment to spawn before the first due time
        lead = (
            0.0
            if self.spec.arrival == "closed"
            else (0.5 if isinstance(self.env.runner, MasterRunner) else 0.05)
        )
        self.pacer = Pacer(self.spec, time.time() + lead)
        gevent.spawn(self._watch)

    def acquire(self) -> Ticket | None:
        """Next ticket for a user of this process (local runner)."""
        while self.pacer is None:
            gevent.sleep(0.01)
        ticket = self.pacer.next(time.time())
        if self.pacer.late and not self.warned_late:
            self.warned_late = True
            log.warning(
                "users ran out: request %d collected after its due time; the offered "
                "rate is below target (raise --users)",
                ticket.index if ticket else -1,
            )
        return ticket

    def submit(self, batch: list[Sample]) -> None:
        self.samples.extend(batch)
        append_samples(self.samples_path, batch)

    def _on_acquire_msg(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        ticket = self.acquire()
        reply = {"key": msg.data["key"], "ticket": asdict(ticket) if ticket else None}
        assert environment.runner is not None
        environment.runner.send_message("ll_grant", reply, client_id=msg.node_id)

    def _on_samples_msg(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        self.submit([sample_from_dict(d) for d in msg.data["samples"]])

    def _watch(self) -> None:
        """End the run when the pacer is done and every issued request has reported."""
        pacer = self.pacer
        assert pacer is not None
        hard_stop = pacer.deadline + self.spec.request_timeout_s + HARD_STOP_GRACE_S
        while True:
            gevent.sleep(FLUSH_S)
            now = time.time()
            if now >= pacer.deadline and not pacer.open_loop:
                pacer.done = True
            if pacer.done and len(self.samples) >= pacer.issued:
                break
            if now > hard_stop:
                self.invalid_reasons.append(
                    f"{pacer.issued - len(self.samples)} requests still unreported at hard stop"
                )
                break
        self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        runner = self.env.runner
        pacer = self.pacer
        meta = {
            "open_loop": self.spec.arrival != "closed",
            "cpu_warning": self.cpu_warning
            or bool(getattr(runner, "cpu_warning_emitted", False))
            or bool(getattr(runner, "worker_cpu_warning_emitted", False)),
            "users_ran_out": pacer.late if pacer else 0,
            "issued": pacer.issued if pacer else 0,
            "reported": len(self.samples),
            "t0": pacer.t0 if pacer else None,
            "ended": time.time(),
            "invalid_reasons": self.invalid_reasons,
        }
        (self.out_dir / "run_meta.json").write_text(json.dumps(meta, indent=2))
        summary = summarize(self.samples)
        (self.out_dir / "llm_stats.json").write_text(json.dumps(summary, indent=2))
        (self.out_dir / "llm_stats.csv").write_text(summary_csv(summary))
        log.info(
            "lamplighter: %d requests issued, %d samples; quitting",
            meta["issued"],
            meta["reported"],
        )
        if runner is not None:
            gevent.spawn_later(0.1, runner.quit)


class WorkerLink:
    """Worker side: tickets and sample delivery through the master."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.pending: dict[int, AsyncResult] = {}
        self.keys = itertools.count()
        self.buffer: list[dict[str, Any]] = []
        assert env.runner is not None
        env.runner.register_message("ll_grant", self._on_grant)
        gevent.spawn(self._flusher)

    def acquire(self) -> Ticket | None:
        key = next(self.keys)
        result: AsyncResult = AsyncResult()
        self.pending[key] = result
        assert self.env.runner is not None
        self.env.runner.send_message("ll_acquire", {"key": key})
        data = result.get()
        return Ticket(**data) if data else None

    def _on_grant(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        result = self.pending.pop(msg.data["key"], None)
        if result is not None:
            result.set(msg.data["ticket"])

    def submit(self, batch: list[Sample]) -> None:
        self.buffer.extend(asdict(s) for s in batch)

    def _flusher(self) -> None:
        while True:
            gevent.sleep(FLUSH_S)
            if self.buffer and self.env.runner is not None:
                batch, self.buffer = self.buffer, []
                self.env.runner.send_message("ll_samples", {"samples": batch})


def install(
    env: Environment, spec: LoadSpec | None, out_dir: Path | None
) -> Coordinator | WorkerLink:
    """The right pacer end for this process's runner role."""
    if isinstance(env.runner, WorkerRunner):
        return WorkerLink(env)
    if spec is None or out_dir is None:
        raise RuntimeError("lamplighter: --ll-spec and --ll-out are required on the master")
    return Coordinator(env, spec, out_dir)


_ACTIVE: dict[int, Coordinator | WorkerLink] = {}


def register(env: Environment, end: Coordinator | WorkerLink) -> None:
    _ACTIVE[id(env)] = end


def active(env: Environment) -> Coordinator | WorkerLink:
    """The pacer end installed for ``env`` by the locustfile's init hook."""
    return _ACTIVE[id(env)]
