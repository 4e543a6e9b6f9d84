"""Envoy ext_proc server (EPP.md §1): the network shell around the pure scheduler.

Modes (read from ``protocol_config`` on the first message, as Envoy sends it):

* request body FULL_DUPLEX_STREAMED, or no protocol_config: the request-headers response is
  deferred until the body is complete; it carries the destination header, Content-Length,
  ``clear_route_cache`` and ``envoy.lb`` dynamic metadata; then the body goes back as
  ``StreamedBodyResponse`` chunks of <= 62,000 bytes, the last with end_of_stream.
* request body BUFFERED / STREAMED without ``send_body_without_waiting_for_header_response``:
  Envoy waits for the headers answer, so headers get an empty CONTINUE and the body answer
  carries the header mutation (and the metadata on the ProcessingResponse).
* response body FULL_DUPLEX_STREAMED (or unknown): chunks echoed as StreamedBodyResponse;
  STREAMED/BUFFERED: an empty BodyResponse per chunk (no mutation).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from scheduler_ref.datastore import Datastore
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.request_parse import parse_request, rewrite_model
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.types import Endpoint, LLMRequest, SchedulingError

__all__ = ["DESTINATION_HEADER", "METADATA_NAMESPACE", "ExtProcServicer"]

log = logging.getLogger("scheduler_ref.extproc")
decision_log = logging.getLogger("scheduler_ref.decision")

DESTINATION_HEADER = "x-gateway-destination-endpoint"
METADATA_NAMESPACE = "envoy.lb"
SUBSET_NAMESPACE = "envoy.lb.subset_hint"
SUBSET_KEY = "x-gateway-destination-endpoint-subset"
MAX_CHUNK = 62_000
MAX_RESPONSE_BUFFER = 4 << 20  # response bytes kept to read usage (head of JSON, tail of SSE)

_Mode = processing_mode_pb2.ProcessingMode
FULL_DUPLEX = _Mode.FULL_DUPLEX_STREAMED


def _header_option(key: str, value: str) -> base_pb2.HeaderValueOption:
    header = base_pb2.HeaderValue(key=key, raw_value=value.encode())
    return base_pb2.HeaderValueOption(header=header)


def _headers(m: pb.HttpHeaders) -> dict[str, str]:
    out = {}
    for h in m.headers.headers:
        out[h.key.lower()] = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
    return out


def immediate(err: SchedulingError) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(immediate_response=pb.ImmediateResponse(
        status=http_status_pb2.HttpStatus(code=err.http_status),  # type: ignore[arg-type]
        body=err.body.encode(),
        details=err.code,
    ))


def _chunks(body: bytes) -> list[bytes]:
    return [body[i : i + MAX_CHUNK] for i in range(0, len(body), MAX_CHUNK)] or [b""]


def _usage(body: bytes, streaming: bool) -> dict[str, int]:
    """prompt/completion/cached tokens from a JSON body or the SSE events of a stream."""
    docs = []
    if streaming:
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                docs.append(line[5:].strip())
    else:
        docs.append(body.decode("utf-8", "replace"))
    out: dict[str, int] = {}
    for doc in docs:
        try:
            usage = json.loads(doc).get("usage")
        except (ValueError, AttributeError, RecursionError):
            continue
        if not isinstance(usage, dict):
            continue
        details = usage.get("prompt_tokens_details") or usage.get("prompt_token_details") or {}
        for key, src in (("prompt", usage.get("prompt_tokens", usage.get("input_tokens"))),
                         ("completion",
                          usage.get("completion_tokens", usage.get("output_tokens"))),
                         ("cached", details.get("cached_tokens")
                          if isinstance(details, dict) else None)):
            if isinstance(src, int | float) and not isinstance(src, bool):
                out[key] = int(src)
    return out


class _ProtocolError(Exception):
    """A message out of the order Envoy sends them in: the stream ends FAILED_PRECONDITION."""


_PHASE_NAMES = {
    "headers": "before the request headers",
    "body": "while the request body streams",
    "routed": "after the request was routed",
    "response": "during the response",
    "done": "after the response ended",
}


def _expect(phase: str, kind: str, *allowed: str) -> None:
    if phase not in allowed:
        raise _ProtocolError(f"{kind} is out of order: received {_PHASE_NAMES[phase]}")


@dataclass
class _Exchange:
    """State of one HTTP request travelling through one ext_proc stream.

    ``phase``: headers -> body -> routed -> response -> done (headers-only requests skip
    body; an ImmediateResponse ends the stream)."""

    phase: str = "headers"
    trailers_seen: bool = False
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    request_mode: int = FULL_DUPLEX
    response_mode: int = FULL_DUPLEX
    answer_headers_first: bool = False
    headers_answered: bool = False
    subset: list[str] | None = None
    req: LLMRequest | None = None
    endpoint: Endpoint | None = None
    start: float = 0.0
    first_byte: float | None = None
    status_ok: bool = True
    streaming: bool = False
    response: bytearray = field(default_factory=bytearray)
    running: bool = False


class ExtProcServicer(pb_grpc.ExternalProcessorServicer):
    """One bidirectional stream per HTTP request, as Envoy opens them."""

    def __init__(
        self,
        datastore: Datastore,
        scheduler: Scheduler,
        metrics: EppMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.datastore = datastore
        self.scheduler = scheduler
        self.metrics = metrics
        self.clock = clock

    async def Process(
        self,
        request_iterator: AsyncIterator[pb.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ProcessingResponse]:
        ex = _Exchange(start=self.clock())
        first = True
        try:
            async for msg in request_iterator:
                if first:
                    first = False
                    self._read_protocol(ex, msg)
                try:
                    responses = self._dispatch(ex, msg)
                except _ProtocolError as e:
                    log.info("ext_proc stream refused", extra={"fields": {
                        "error": str(e), "request_id": ex.headers.get("x-request-id", "")}})
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
                    return
                for r in responses:
                    yield r
                    if r.WhichOneof("response") == "immediate_response":
                        return
        finally:
            self._finish(ex)

    def _dispatch(self, ex: _Exchange, msg: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        """One message -> its answers, enforcing the order Envoy sends them in."""
        kind = msg.WhichOneof("request")
        phase = ex.phase
        if kind == "request_headers":
            _expect(phase, kind, "headers")
            return self._on_request_headers(ex, msg)
        if kind == "request_body":
            _expect(phase, kind, "body")
            return self._on_request_body(ex, msg.request_body)
        if kind == "request_trailers":
            _expect(phase, kind, "body", "routed")
            if ex.trailers_seen:
                raise _ProtocolError("request_trailers received twice")
            ex.trailers_seen = True
            trailers = pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
            if phase == "body":  # a request with trailers: its body ends here
                out = self._on_request_body(ex, pb.HttpBody(end_of_stream=True))
                if any(r.WhichOneof("response") == "immediate_response" for r in out):
                    return out
                return [*out, trailers]
            return [trailers]
        if kind == "response_headers":
            _expect(phase, kind, "routed")
            ex.phase = "response"
            return self._on_response_headers(ex, msg.response_headers)
        if kind == "response_body":
            _expect(phase, kind, "response")
            return self._on_response_body(ex, msg.response_body)
        if kind == "response_trailers":
            _expect(phase, kind, "response")
            if ex.req is not None and ex.running:
                self._complete(ex)
            ex.phase = "done"
            return [pb.ProcessingResponse(response_trailers=pb.TrailersResponse())]
        raise _ProtocolError(f"unsupported ext_proc message {kind or '(empty)'}")

    # -- request path ---------------------------------------------------------------------

    def _read_protocol(self, ex: _Exchange, msg: pb.ProcessingRequest) -> None:
        if msg.HasField("protocol_config"):
            cfg = msg.protocol_config
            ex.request_mode = cfg.request_body_mode
            ex.response_mode = cfg.response_body_mode
            ex.answer_headers_first = (
                cfg.request_body_mode != FULL_DUPLEX
                and not cfg.send_body_without_waiting_for_header_response
            )
        meta = msg.metadata_context.filter_metadata
        if SUBSET_NAMESPACE in meta and SUBSET_KEY in meta[SUBSET_NAMESPACE].fields:
            value = meta[SUBSET_NAMESPACE].fields[SUBSET_KEY]
            if value.HasField("list_value"):
                ex.subset = [v.string_value for v in value.list_value.values]
            else:
                ex.subset = [s for s in value.string_value.split(",") if s]

    def _on_request_headers(
        self, ex: _Exchange, msg: pb.ProcessingRequest
    ) -> list[pb.ProcessingResponse]:
        ex.headers = _headers(msg.request_headers)
        ex.path = ex.headers.get(":path", "")
        ex.phase = "body"
        if msg.request_headers.end_of_stream:
            ex.phase = "routed"
            # No body (e.g. GET /v1/models): any ready endpoint, as the EPP does.
            try:
                e = self.scheduler.pick_any(self.datastore.snapshot(), self.clock())
            except SchedulingError as err:
                return [self._error(ex, err)]
            ex.endpoint = e
            ex.headers_answered = True
            return [self._headers_response(e.key, 0, ex)]
        if ex.answer_headers_first:
            ex.headers_answered = True
            return [pb.ProcessingResponse(request_headers=pb.HeadersResponse())]
        return []

    def _on_request_body(self, ex: _Exchange, body: pb.HttpBody) -> list[pb.ProcessingResponse]:
        ex.body += body.body
        if not body.end_of_stream:
            if ex.request_mode == _Mode.STREAMED and ex.answer_headers_first:
                # plain STREAMED mode wants an answer per chunk; hold the body back
                return [pb.ProcessingResponse(request_body=pb.BodyResponse())]
            return []
        ex.phase = "routed"
        try:
            decision_target, payload = self._decide(ex)
        except SchedulingError as err:
            return [self._error(ex, err)]
        except Exception as err:  # a bug must not take the gateway's request down silently
            log.exception("internal error while scheduling")
            return [self._error(ex, SchedulingError("Internal", str(err) or type(err).__name__))]
        out = []
        if not ex.headers_answered:
            ex.headers_answered = True
            out.append(self._headers_response(decision_target, len(payload), ex))
            if ex.request_mode == FULL_DUPLEX or ex.request_mode == _Mode.NONE:
                chunks = _chunks(payload)
                for i, c in enumerate(chunks):
                    out.append(pb.ProcessingResponse(request_body=pb.BodyResponse(
                        response=pb.CommonResponse(body_mutation=pb.BodyMutation(
                            streamed_response=pb.StreamedBodyResponse(
                                body=c, end_of_stream=i == len(chunks) - 1))))))
            else:
                mutation = (pb.BodyMutation(body=payload) if payload != bytes(ex.body)
                            else None)
                out.append(pb.ProcessingResponse(request_body=pb.BodyResponse(
                    response=pb.CommonResponse(body_mutation=mutation))))
        else:
            # headers already answered (BUFFERED with Envoy waiting): mutate in the body answer
            common = pb.CommonResponse(
                clear_route_cache=True,
                header_mutation=pb.HeaderMutation(set_headers=self._set_headers(
                    decision_target, len(payload))),
            )
            if payload != bytes(ex.body):
                common.body_mutation.body = payload
            out.append(pb.ProcessingResponse(request_body=pb.BodyResponse(response=common),
                                             dynamic_metadata=self._metadata(decision_target)))
        ex.running = True
        assert ex.req is not None
        self.metrics.running.labels(ex.req.model).inc()
        return out

    def _decide(self, ex: _Exchange) -> tuple[str, bytes]:
        body = bytes(ex.body)
        req = parse_request(ex.path, ex.headers, body)
        ex.req = req
        snapshot = self.datastore.snapshot()
        now = self.clock()
        t0 = time.perf_counter()
        decision = self.scheduler.schedule(req, snapshot, now, ex.subset, timer=time.perf_counter)
        elapsed = time.perf_counter() - t0
        ex.endpoint = decision.picked_endpoint
        decision_log.info("decision", extra={"fields": decision.log_record()})
        block_size = 0
        for p in self.scheduler.config.plugins.values():
            block_size = block_size or int(getattr(p, "block_size", 0))
        self.metrics.decision(decision, elapsed, block_size)
        self.metrics.pool_state(snapshot, self.scheduler.fresh(snapshot, now),
                                self.scheduler.prefix_index_size())
        self.metrics.requests.labels(req.model, req.target_model).inc()
        payload = rewrite_model(body, req)
        self.metrics.request_sizes.labels(req.model, req.target_model).observe(len(payload))
        return ",".join(decision.endpoints), payload

    def _set_headers(self, target: str, length: int) -> list[base_pb2.HeaderValueOption]:
        headers = [_header_option(DESTINATION_HEADER, target)]
        if length > 0:
            headers.append(_header_option("Content-Length", str(length)))
        return headers

    def _metadata(self, target: str) -> struct_pb2.Struct:
        meta = struct_pb2.Struct()
        meta.update({METADATA_NAMESPACE: {DESTINATION_HEADER: target}})
        return meta

    def _headers_response(self, target: str, length: int, ex: _Exchange) -> pb.ProcessingResponse:
        return pb.ProcessingResponse(
            request_headers=pb.HeadersResponse(response=pb.CommonResponse(
                clear_route_cache=True,
                header_mutation=pb.HeaderMutation(set_headers=self._set_headers(target, length)),
            )),
            dynamic_metadata=self._metadata(target),
        )

    def _error(self, ex: _Exchange, err: SchedulingError) -> pb.ProcessingResponse:
        model = ex.req.model if ex.req else ""
        target = ex.req.target_model if ex.req else ""
        self.metrics.errors.labels(model, target, err.code).inc()
        log.info("request refused", extra={"fields": {
            "code": err.code, "status": err.http_status, "error": err.message,
            "request_id": ex.req.request_id if ex.req else ex.headers.get("x-request-id", "")}})
        return immediate(err)

    # -- response path --------------------------------------------------------------------

    def _on_response_headers(
        self, ex: _Exchange, msg: pb.HttpHeaders
    ) -> list[pb.ProcessingResponse]:
        headers = _headers(msg)
        status = headers.get(":status", headers.get("status", "200"))
        ex.status_ok = status == "200"
        ex.streaming = "text/event-stream" in headers.get("content-type", "")
        if not ex.status_ok and ex.req is not None:
            self.metrics.errors.labels(ex.req.model, ex.req.target_model,
                                       "ModelServerError").inc()
        extra = {"x-went-into-resp-headers": "true"}
        if ex.req is not None and ex.endpoint is not None:
            extra.update(self.scheduler.response_headers(ex.req, ex.endpoint))
        return [pb.ProcessingResponse(response_headers=pb.HeadersResponse(
            response=pb.CommonResponse(header_mutation=pb.HeaderMutation(
                set_headers=[_header_option(k, v) for k, v in extra.items()]))))]

    def _on_response_body(self, ex: _Exchange, body: pb.HttpBody) -> list[pb.ProcessingResponse]:
        if ex.first_byte is None and body.body:
            ex.first_byte = self.clock()
        ex.response += body.body
        if len(ex.response) > MAX_RESPONSE_BUFFER:
            if ex.streaming:
                # usage rides on the last SSE event: keep the tail (a cut first event is skipped)
                del ex.response[:-MAX_RESPONSE_BUFFER]
            else:
                del ex.response[MAX_RESPONSE_BUFFER:]
        if body.end_of_stream:
            self._complete(ex)
            ex.phase = "done"
        if ex.response_mode in (_Mode.STREAMED, _Mode.BUFFERED, _Mode.BUFFERED_PARTIAL):
            return [pb.ProcessingResponse(response_body=pb.BodyResponse())]
        # the echo of every streamed chunk: set the leaf fields in place (a quarter of the
        # cost of building the five nested messages one by one)
        answer = pb.ProcessingResponse()
        streamed = answer.response_body.response.body_mutation.streamed_response
        streamed.body = body.body
        streamed.end_of_stream = body.end_of_stream
        return [answer]

    def _complete(self, ex: _Exchange) -> None:
        req = ex.req
        if req is None:
            return
        now = self.clock()
        labels = (req.model, req.target_model)
        self.metrics.duration.labels(*labels).observe(max(0.0, now - ex.start))
        if ex.first_byte is not None and req.stream:
            self.metrics.ttft.labels(*labels).observe(max(0.0, ex.first_byte - ex.start))
        usage = _usage(bytes(ex.response), ex.streaming)
        if "prompt" in usage:
            self.metrics.input_tokens.labels(*labels).observe(usage["prompt"])
        if "completion" in usage:
            self.metrics.output_tokens.labels(*labels).observe(usage["completion"])
        if "cached" in usage:
            self.metrics.cached_tokens.labels(*labels).observe(usage["cached"])
        ex.response.clear()
        self._finish(ex)

    def _finish(self, ex: _Exchange) -> None:
        """Release per-request state once (response done, or the stream ended early)."""
        if ex.running and ex.req is not None:
            ex.running = False
            self.metrics.running.labels(ex.req.model).dec()
            if ex.endpoint is not None:
                self.scheduler.response_complete(ex.req, ex.endpoint.key, self.clock())
