"""The Locust user: one OpenAI-compatible request per pacer ticket.  (Locust side.)

Locust's own request row gets one entry per request with response_time = E2E (name is the
endpoint plus ``stream``/``no-stream``); TTFT, TPOT, ITL and token counts go to the raw
samples and the LLM tables, never into extra request rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import GreenletExit
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import pacing
from loadtests.client import build_body, new_http_client, send_request
from loadtests.runconfig import LoadSpec, spec_from_json
from loadtests.samples import Sample
from loadtests.workloads import RequestSpec, generate

__all__ = ["LLMUser", "RunContext", "context_for", "request_path"]

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
IDLE_S = 0.5


@dataclass
class RunContext:
    spec: LoadSpec
    requests: list[RequestSpec]
    path: str
    name: str
    worker: str


_CONTEXTS: dict[int, RunContext] = {}


def request_path(base_url: str, api: str) -> str:
    """The endpoint under the base URL's own path: the HTTP client keeps only host and port,
    and a base URL may carry a prefix (the API server's service proxy serves a Service at
    ``/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy``)."""
    return urlsplit(base_url).path.rstrip("/") + PATHS[api]


def context_for(env: Environment) -> RunContext:
    """Spec and prompts for this process, built once (on workers after the master's spawn)."""
    ctx = _CONTEXTS.get(id(env))
    if ctx is None:
        options = env.parsed_options
        assert options is not None
        spec = spec_from_json(options.ll_spec)
        path = request_path(spec.base_url, spec.api)
        runner = env.runner
        worker = runner.client_id if isinstance(runner, WorkerRunner) else "local"
        ctx = RunContext(
            spec,
            generate(spec.workload, spec.api),
            path,
            f"{PATHS[spec.api]} {'stream' if spec.stream else 'no-stream'}",
            str(worker),
        )
        _CONTEXTS[id(env)] = ctx
    return ctx


class LLMUser(User):
    """Sends the workload's requests in the pacer's order; records one Sample each."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.ctx = context_for(self.environment)
        self.pacer_end = pacing.active(self.environment)
        self.http = new_http_client(
            self.host or self.ctx.spec.base_url, self.ctx.spec.request_timeout_s
        )

    def on_stop(self) -> None:
        self.http.close()

    @task
    def one_request(self) -> None:
        ticket = self.pacer_end.acquire()
        if ticket is None:
            gevent.sleep(IDLE_S)
            return
        if ticket.due is not None:
            delay = ticket.due - time.time()
            if delay > 0:
                gevent.sleep(delay)
        ctx = self.ctx
        req = ctx.requests[ticket.index % len(ctx.requests)]
        spec = ctx.spec
        sample = Sample(
            request_id=ticket.index,
            group=req.group,
            api=req.api,
            stream=spec.stream,
            url=ctx.path,
            start=time.time(),
            worker=ctx.worker,
            warmup=ticket.warmup,
            offered_rate=ticket.offered_rate,
            scheduled=ticket.due,
        )
        body = build_body(req, spec.model, spec.stream, spec.ignore_eos)
        try:
            send_request(self.http, ctx.path, body, spec.extra_headers, sample)
        except GreenletExit:
            sample.error = "cancelled: user stopped mid-request"
            self.pacer_end.submit([sample])
            raise
        if sample.status == 0:  # connection-level failure: start from a fresh connection
            self.http.close()
            self.http = new_http_client(self.host or spec.base_url, spec.request_timeout_s)
        self.pacer_end.submit([sample])
        self._fire(sample)

    def _fire(self, sample: Sample) -> None:
        exc: Any = RuntimeError(sample.error) if sample.error else None
        events.request.fire(
            request_type="POST",
            name=self.ctx.name,
            response_time=(sample.e2e_s or 0.0) * 1000.0,
            response_length=sample.completion_tokens or 0,
            exception=exc,
            context={},
        )
