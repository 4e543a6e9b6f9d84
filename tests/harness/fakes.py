"""Test doubles for the gateway: an in-process ext_proc EPP and tiny model-server pods.

The fake EPP behaves like GAIE's: in FULL_DUPLEX_STREAMED it defers the request-headers
answer until the body ended, then streams the (possibly rewritten) body back; response
headers are answered at once and response chunks echoed one by one. In BUFFERED mode it
answers every message as it comes, scheduling on the body message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import json_format, struct_pb2

from fixtures.gateway.headers import header_value


def _set(key: str, value: str) -> base_pb2.HeaderValueOption:
    header = base_pb2.HeaderValue(key=key, raw_value=value.encode())
    return base_pb2.HeaderValueOption(header=header)


@dataclass
class FakeEpp(ep_grpc.ExternalProcessorServicer):
    destination: str = ""
    destination_in_header: bool = True
    buffered: bool = False
    immediate: tuple[int, str] | None = None  # (status, body) answered on the request body
    rewrite_model: str | None = None
    abort_on_response_body: bool = False  # the EPP dies after the response headers
    seen_request_headers: list[dict[str, str]] = field(default_factory=list)
    seen_request_bodies: list[bytes] = field(default_factory=list)
    seen_served: list[str] = field(default_factory=list)
    seen_response_chunks: list[bytes] = field(default_factory=list)
    headers_answered_before_body_end: bool = False

    def _schedule(self) -> ep.CommonResponse:
        mutation = ep.HeaderMutation()
        if self.destination_in_header:
            mutation.set_headers.append(_set("x-gateway-destination-endpoint", self.destination))
        mutation.set_headers.append(_set("x-epp-scheduled", "yes"))
        return ep.CommonResponse(clear_route_cache=True, header_mutation=mutation)

    def _metadata(self) -> struct_pb2.Struct:
        lb = struct_pb2.Struct()
        lb.update({"envoy.lb": {"x-gateway-destination-endpoint": self.destination}})
        return lb

    def _immediate(self) -> ep.ProcessingResponse:
        assert self.immediate is not None
        status, body = self.immediate
        return ep.ProcessingResponse(immediate_response=ep.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),  # type: ignore[arg-type]
            headers=ep.HeaderMutation(set_headers=[_set("x-epp-error", "1")]),
            body=body.encode(),
        ))

    def _new_body(self, body: bytes) -> bytes:
        if self.rewrite_model is None:
            return body
        data = json.loads(body)
        data["model"] = self.rewrite_model
        return json.dumps(data).encode()

    async def Process(  # the gRPC method's name
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: Any
    ) -> AsyncIterator[ep.ProcessingResponse]:
        body = bytearray()
        async for message in request_iterator:
            kind = message.WhichOneof("request")
            if kind == "request_headers":
                self.seen_request_headers.append({
                    h.key: header_value(h) for h in message.request_headers.headers.headers
                })
                if message.request_headers.end_of_stream or self.buffered:
                    scheduled = self._schedule() if message.request_headers.end_of_stream \
                        else ep.CommonResponse()
                    if self.buffered and not message.request_headers.end_of_stream:
                        self.headers_answered_before_body_end = True
                    yield ep.ProcessingResponse(
                        request_headers=ep.HeadersResponse(response=scheduled),
                        dynamic_metadata=self._metadata(),
                    )
            elif kind == "request_body":
                body += message.request_body.body
                if not message.request_body.end_of_stream:
                    continue
                self.seen_request_bodies.append(bytes(body))
                if self.immediate:
                    yield self._immediate()
                    return
                new_body = self._new_body(bytes(body))
                if self.buffered:
                    common = self._schedule()
                    common.body_mutation.body = new_body
                    yield ep.ProcessingResponse(request_body=ep.BodyResponse(response=common),
                                                dynamic_metadata=self._metadata())
                    continue
                yield ep.ProcessingResponse(
                    request_headers=ep.HeadersResponse(response=self._schedule()),
                    dynamic_metadata=self._metadata(),
                )
                yield ep.ProcessingResponse(request_body=ep.BodyResponse(response=ep.CommonResponse(
                    body_mutation=ep.BodyMutation(streamed_response=ep.StreamedBodyResponse(
                        body=new_body, end_of_stream=True)))))
            elif kind == "response_headers":
                meta = json_format.MessageToDict(message.metadata_context)
                served = meta.get("filterMetadata", {}).get("envoy.lb", {})
                self.seen_served.append(served.get("x-gateway-destination-endpoint-served", ""))
                yield ep.ProcessingResponse(response_headers=ep.HeadersResponse(
                    response=ep.CommonResponse(header_mutation=ep.HeaderMutation(
                        set_headers=[_set("x-went-into-resp-headers", "true")]))))
            elif kind == "response_body":
                chunk = message.response_body.body
                self.seen_response_chunks.append(chunk)
                if self.abort_on_response_body:
                    await context.abort(grpc.StatusCode.INTERNAL, "epp crashed")
                if self.buffered:
                    yield ep.ProcessingResponse(response_body=ep.BodyResponse(
                        response=ep.CommonResponse()))
                    continue
                yield ep.ProcessingResponse(response_body=ep.BodyResponse(
                    response=ep.CommonResponse(body_mutation=ep.BodyMutation(
                        streamed_response=ep.StreamedBodyResponse(
                            body=chunk, end_of_stream=message.response_body.end_of_stream))))
                )


async def start_epp(servicer: FakeEpp) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    ep_grpc.add_ExternalProcessorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@dataclass
class FakePod:
    """A model server that says who it is and can stream SSE under the test's control."""

    name: str
    received: list[dict[str, Any]] = field(default_factory=list)
    release_last_chunk: asyncio.Event = field(default_factory=asyncio.Event)
    break_after_first_chunk: bool = False  # cut the connection mid-stream

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append({"headers": dict(request.headers), "body": body})
        if not body.get("stream"):
            return web.json_response({"pod": self.name, "model": body.get("model")},
                                     headers={"x-inference-pod": self.name})
        response = web.StreamResponse(headers={"content-type": "text/event-stream",
                                               "x-inference-pod": self.name})
        await response.prepare(request)
        await response.write(b'data: {"chunk": 1}\n\n')
        if self.break_after_first_chunk:
            await asyncio.sleep(0.2)  # let the chunk travel through the EPP first
            assert request.transport is not None
            request.transport.close()
            return response
        await asyncio.wait_for(self.release_last_chunk.wait(), 10)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(self, request: web.Request) -> web.Response:
        self.received.append({"headers": dict(request.headers), "body": None})
        return web.json_response({"data": [{"id": "m"}]}, headers={"x-inference-pod": self.name})


async def start_pod(pod: FakePod) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/completions", pod.completions)
    app.router.add_get("/v1/models", pod.models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"127.0.0.1:{port}"
