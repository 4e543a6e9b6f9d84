"""Fuzz: >= 1,000 generated ext_proc exchanges against one live server; no crash, no hang.

Each exchange must end with a well-formed answer: routed (the destination header names a
known endpoint, and the envoy.lb metadata says the same) or an ImmediateResponse with an
``inference error:`` body and a status the default config can produce for a bad request or
an empty pool (400, 503). A 500 / ``Internal`` is a bug and fails the test. Every gRPC call
has a deadline. ``LAMPLIGHTER_FUZZ_CASES`` raises the count (nightly: 10000).
"""

from __future__ import annotations

import asyncio
import json
import os
import random

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.datastore import Datastore
from scheduler_ref.extproc import ExtProcServicer, immediate
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.scheduler import Scheduler
from scheduler_ref.types import SchedulingError
from tests.support.extproc_messages import MODE, body_msgs, headers_msg, set_headers
from tests.support.scheduler_inputs import NOW, endpoint

EXCHANGES = int(os.environ.get("LAMPLIGHTER_FUZZ_CASES", "1000"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)
TRICKY = [
    b'{"model":"m","prompt":"\\ud800' + b"x" * 100 + b'"}',  # unpaired surrogate escape
    b'{"model":"m","prompt":"\xff\xfe' + b"y" * 100 + b'"}',  # invalid UTF-8 in a string
    b'{"model":"m","prompt":NaN}',
    b'{"model":"m","prompt":"a","n":1e400}',
    b'{"model":"m","prompt":"a","seed":' + b"9" * 400 + b"}",
    b"[" * 5000 + b"]" * 5000,
    b'{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"' + b"z" * 200
    + b'"},{"type":"image_url","image_url":"not-an-object"}]}]}',
    b'{"model":"m","messages":[null,{"content":null}],"cache_salt":7}',
    b'{"model":"m","messages":[{"role":1,"content":"x"}]}',
    b'{"model":"m","input":{"deep":[1.5,-0.0,1e-9,true,null]},"tools":[{}]}',
    b'{"model":"m","items":[{"type":"message","content":{"b":1,"a":[2]}}]}',
    b'{"model":"","prompt":["' + b"q" * 100 + b'",null]}',
]
content_blocks = st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", 3])},
    optional={"text": st.one_of(st.text(max_size=100), st.integers()),
              "image_url": st.one_of(st.fixed_dictionaries({"url": st.text(max_size=10)}),
                                     st.text(max_size=5))}), max_size=3)
bodies = st.one_of(
    st.sampled_from(TRICKY),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"model": st.one_of(st.text(max_size=10), st.integers(), st.none())},
        optional={"prompt": st.one_of(st.text(max_size=3000), st.lists(st.integers()),
                                      st.lists(st.one_of(st.text(max_size=100), st.none()))),
                  "messages": st.lists(st.one_of(
                      st.dictionaries(st.sampled_from(["role", "content"]),
                                      st.text(max_size=200)),
                      st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]),
                                             "content": st.one_of(content_blocks, st.none())}),
                  ), max_size=3),
                  "input": json_values, "items": st.lists(json_values, max_size=3),
                  "stream": st.booleans(),
                  "cache_salt": st.one_of(st.text(max_size=5), st.integers())},
    ).map(lambda d: json.dumps(d).encode()),
)
exchanges = st.tuples(
    st.sampled_from(["/v1/completions", "/v1/chat/completions", "/v1/responses",
                     "/v1/embeddings", "/v1/conversations", "/x", ""]),
    bodies,
    st.integers(min_value=1, max_value=5),  # body chunks
    st.sampled_from([MODE.FULL_DUPLEX_STREAMED, MODE.BUFFERED]),
    st.booleans(),  # headers-only
    st.booleans(),  # response phase
    st.booleans(),  # client abandons the stream early
)


def check_exchange(out: list[pb.ProcessingResponse], mode: int, headers_only: bool,
                   abandon: bool, known: set[str]) -> str:
    """The verdict on one exchange (AssertionError says why); returns its outcome."""
    kinds = [r.WhichOneof("response") for r in out]
    if "immediate_response" in kinds:
        assert kinds.index("immediate_response") == len(kinds) - 1, kinds
        imm = out[-1].immediate_response
        text = imm.body.decode()
        assert text.startswith("inference error: "), text
        assert "Internal" not in text, text
        assert imm.status.code in (400, 503), text
        return "refused"
    if abandon:
        return "abandoned"
    assert kinds and kinds[0] == "request_headers", kinds
    routed = out[0] if mode == MODE.FULL_DUPLEX_STREAMED or headers_only else next(
        r for r in out if r.WhichOneof("response") == "request_body")
    dest = set_headers(routed).get("x-gateway-destination-endpoint")
    assert dest in known, dest
    meta = routed.dynamic_metadata.fields["envoy.lb"].struct_value
    assert meta.fields["x-gateway-destination-endpoint"].string_value == dest
    return "routed"


def test_check_exchange_fails_on_500_and_on_routing_nowhere() -> None:
    """Negative controls: the verdict catches an Internal error and a missing destination."""
    internal = immediate(SchedulingError("Internal", "boom"))
    nowhere = pb.ProcessingResponse(request_headers=pb.HeadersResponse())
    elsewhere = pb.ProcessingResponse(request_headers=pb.HeadersResponse(
        response=pb.CommonResponse(header_mutation=pb.HeaderMutation(set_headers=[
            base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(
                key="x-gateway-destination-endpoint", raw_value=b"10.9.9.9:1"))]))))
    for out in ([internal], [nowhere], [elsewhere]):
        try:
            check_exchange(out, MODE.FULL_DUPLEX_STREAMED, False, False, {"10.0.0.1:8000"})
        except (AssertionError, KeyError):
            continue
        raise AssertionError(f"accepted a bad exchange: {out}")


def test_fuzz_exchanges_never_crash_or_hang() -> None:
    samples: list[tuple[str, bytes, int, int, bool, bool, bool]] = []

    @settings(max_examples=EXCHANGES, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(exchanges)
    def collect(x: tuple[str, bytes, int, int, bool, bool, bool]) -> None:
        samples.append(x)

    collect()
    assert len(samples) >= EXCHANGES

    async def main() -> None:
        ds = Datastore()
        eps = [endpoint(i, waiting=i % 3) for i in range(1, 5)]
        ds.set_endpoints(eps)
        for e in eps:
            ds.update_metrics(e.key, {"metrics_time": NOW, "waiting": e.waiting})
        known = {e.key for e in eps}
        sched = Scheduler(load_config(DEFAULT_CONFIG), rng=random.Random(5))
        server = grpc.aio.server()
        pb_grpc.add_ExternalProcessorServicer_to_server(
            ExtProcServicer(ds, sched, EppMetrics("p"), clock=lambda: NOW), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        outcomes = {"routed": 0, "refused": 0, "abandoned": 0}
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = pb_grpc.ExternalProcessorStub(ch)
                for path, body, chunks, mode, headers_only, respond, abandon in samples:
                    msgs = [headers_msg(path, end_of_stream=headers_only, body_mode=mode)]
                    if not headers_only:
                        msgs += body_msgs(body, chunks)
                    if abandon:
                        msgs = msgs[:-1] or msgs
                    elif respond:
                        msgs += [pb.ProcessingRequest(response_headers=pb.HttpHeaders()),
                                 pb.ProcessingRequest(response_body=pb.HttpBody(
                                     body=body[:50], end_of_stream=True))]
                    out = [r async for r in stub.Process(iter(msgs), timeout=10)]
                    outcomes[check_exchange(out, mode, headers_only, abandon, known)] += 1
        finally:
            await server.stop(None)
        assert sum(outcomes.values()) == len(samples)
        assert outcomes["routed"] > EXCHANGES // 20 and outcomes["refused"] > EXCHANGES // 20, \
            outcomes

    asyncio.run(asyncio.wait_for(main(), 120 * max(1, EXCHANGES // 1000)))
