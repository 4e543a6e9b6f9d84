"""ext_proc over real gRPC (in-process server, Envoy-like client): routing, body, errors."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.datastore import Datastore
from scheduler_ref.extproc import MAX_RESPONSE_BUFFER, ExtProcServicer
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.types import Endpoint
from tests.support.extproc_messages import MODE, body_msgs, headers_msg, set_headers
from tests.support.scheduler_inputs import NOW, endpoint

Client = Callable[[list[pb.ProcessingRequest]], Awaitable[list[pb.ProcessingResponse]]]


def run(eps: list[Endpoint], test: Callable[[Client, Datastore], Awaitable[None]],
        metrics: EppMetrics | None = None) -> None:
    async def main() -> None:
        ds = Datastore()
        ds.set_endpoints(eps)
        for e in eps:
            if e.metrics_time is not None:
                ds.update_metrics(e.key, {"metrics_time": e.metrics_time, "waiting": e.waiting})
        sched = Scheduler(load_config(DEFAULT_CONFIG), rng=random.Random(1))
        server = grpc.aio.server()
        pb_grpc.add_ExternalProcessorServicer_to_server(
            ExtProcServicer(ds, sched, metrics or EppMetrics("p"), clock=lambda: NOW), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = pb_grpc.ExternalProcessorStub(ch)

                async def exchange(msgs: list[pb.ProcessingRequest]) -> list[pb.ProcessingResponse]:
                    call = stub.Process(iter(msgs), timeout=10)
                    return [r async for r in call]

                await test(exchange, ds)
        finally:
            await server.stop(None)

    asyncio.run(main())


BODY = json.dumps({"model": "m", "prompt": "hello world " * 2000, "stream": True}).encode()


def test_destination_header_metadata_and_body_unchanged() -> None:
    async def t(exchange: Client, ds: Datastore) -> None:
        out = await exchange([headers_msg(), *body_msgs(BODY, chunks=3)])
        first = out[0]
        assert first.WhichOneof("response") == "request_headers"
        hs = set_headers(first)
        dest = hs["x-gateway-destination-endpoint"]
        assert dest in {e.key for e in eps}
        assert hs["Content-Length"] == str(len(BODY))
        assert first.request_headers.response.clear_route_cache
        meta = first.dynamic_metadata.fields["envoy.lb"].struct_value
        assert meta.fields["x-gateway-destination-endpoint"].string_value == dest
        chunks = [r.request_body.response.body_mutation.streamed_response for r in out[1:]]
        assert b"".join(c.body for c in chunks) == BODY
        assert all(len(c.body) <= 62_000 for c in chunks)
        assert [c.end_of_stream for c in chunks][-1] is True

    eps = [endpoint(1), endpoint(2)]
    run(eps, t)


def test_response_phase_echoes_body_and_marks_headers() -> None:
    async def t(exchange: Client, ds: Datastore) -> None:
        resp_headers = pb.ProcessingRequest(response_headers=pb.HttpHeaders(
            headers=headers_msg(extra={":status": "200", "content-type": "text/event-stream"})
            .request_headers.headers))
        sse = b'data: {"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\ndata: [DONE]\n\n'
        out = await exchange([headers_msg(), *body_msgs(BODY), resp_headers,
                              pb.ProcessingRequest(response_body=pb.HttpBody(
                                  body=sse, end_of_stream=True))])
        kinds = [r.WhichOneof("response") for r in out]
        assert kinds == ["request_headers", "request_body", "response_headers", "response_body"]
        assert set_headers(out[2])["x-went-into-resp-headers"] == "true"
        assert out[3].response_body.response.body_mutation.streamed_response.body == sse

    run([endpoint(1)], t)


def test_usage_of_a_stream_longer_than_the_buffer_is_still_read() -> None:
    """The usage event comes last, so a long stream must keep its tail, not its head."""
    metrics = EppMetrics("p")
    filler = b'data: {"choices":[{"text":"%s"}]}\n\n' % (b"x" * 60_000)
    count = MAX_RESPONSE_BUFFER // len(filler) + 2
    usage = b'data: {"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\ndata: [DONE]\n\n'

    async def t(exchange: Client, ds: Datastore) -> None:
        resp_headers = pb.ProcessingRequest(response_headers=pb.HttpHeaders(
            headers=headers_msg(extra={":status": "200", "content-type": "text/event-stream"})
            .request_headers.headers))
        chunks = [pb.ProcessingRequest(response_body=pb.HttpBody(body=filler))] * count
        await exchange([headers_msg(), *body_msgs(BODY), resp_headers, *chunks,
                        pb.ProcessingRequest(response_body=pb.HttpBody(
                            body=usage, end_of_stream=True))])

    run([endpoint(1)], t, metrics)
    labels = {"model_name": "m", "target_model_name": "m"}
    reg = metrics.registry
    assert reg.get_sample_value("inference_objective_input_tokens_sum", labels) == 7
    assert reg.get_sample_value("inference_objective_output_tokens_sum", labels) == 3


def test_buffered_mode_answers_headers_first_and_routes_in_body_answer() -> None:
    async def t(exchange: Client, ds: Datastore) -> None:
        out = await exchange([headers_msg(body_mode=MODE.BUFFERED), *body_msgs(BODY)])
        assert [r.WhichOneof("response") for r in out] == ["request_headers", "request_body"]
        assert set_headers(out[0]) == {}
        assert set_headers(out[1])["x-gateway-destination-endpoint"] == endpoint(1).key
        assert "envoy.lb" in out[1].dynamic_metadata.fields

    run([endpoint(1)], t)


def _immediate(out: list[pb.ProcessingResponse]) -> tuple[int, str]:
    assert out[-1].WhichOneof("response") == "immediate_response", out
    imm = out[-1].immediate_response
    return imm.status.code, imm.body.decode()


def test_bad_bodies_are_400_and_no_endpoint_is_503() -> None:
    async def t(exchange: Client, ds: Datastore) -> None:
        deep = b"[" * 100_000  # nests past the JSON decoder's recursion limit
        for body in (b"not json", b'{"prompt": "x"}', b'{"model": "m"}', b"[1]", deep):
            code, text = _immediate(await exchange([headers_msg(), *body_msgs(body)]))
            assert code == 400 and text.startswith("inference error: BadRequest - "), text
        ds.set_endpoints([])
        code, text = _immediate(await exchange([headers_msg(), *body_msgs(BODY)]))
        assert code == 503 and text.startswith("inference error: ServiceUnavailable - ")

    run([endpoint(1)], t)


def test_stale_endpoint_is_not_picked() -> None:
    async def t(exchange: Client, ds: Datastore) -> None:
        for _ in range(10):
            out = await exchange([headers_msg(), *body_msgs(BODY)])
            assert set_headers(out[0])["x-gateway-destination-endpoint"] == endpoint(2).key

    run([endpoint(1, metrics_time=NOW - 60), endpoint(2, waiting=30)], t)


def test_headers_only_request_goes_to_some_endpoint() -> None:
    async def t(exchange: Client, ds: Datastore) -> None:
        out = await exchange([headers_msg("/v1/models", end_of_stream=True)])
        assert set_headers(out[0])["x-gateway-destination-endpoint"] == endpoint(1).key

    run([endpoint(1)], t)


def test_request_ending_in_trailers_is_scheduled_then_trailers_answered() -> None:
    async def t(exchange: Client, ds: Datastore) -> None:
        chunks = body_msgs(BODY, chunks=2)
        chunks[-1].request_body.end_of_stream = False  # the body ends with trailers instead
        out = await exchange([headers_msg(), *chunks,
                              pb.ProcessingRequest(request_trailers=pb.HttpTrailers())])
        kinds = [r.WhichOneof("response") for r in out]
        assert kinds[0] == "request_headers" and kinds[-1] == "request_trailers"
        assert set_headers(out[0])["x-gateway-destination-endpoint"] in ds.keys()  # noqa: SIM118 (Datastore.keys)
        echoed = b"".join(r.request_body.response.body_mutation.streamed_response.body
                          for r in out if r.WhichOneof("response") == "request_body")
        assert echoed == BODY

    run([endpoint(1, metrics_time=NOW)], t)


def test_a_second_request_end_is_refused_not_scheduled_twice() -> None:
    metrics = EppMetrics("p")

    async def t(exchange: Client, ds: Datastore) -> None:
        body = json.dumps({"model": "m", "prompt": "x" * 100}).encode()
        try:
            await exchange([headers_msg(), *body_msgs(body), *body_msgs(body)])
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert e.details() == ("request_body is out of order: received after the request "
                                   "was routed")
        else:
            raise AssertionError("a duplicated request body was accepted")

    run([endpoint(1, metrics_time=NOW)], t, metrics)
    assert metrics.requests.labels("m", "m")._value.get() == 1
    assert metrics.running.labels("m")._value.get() == 0
