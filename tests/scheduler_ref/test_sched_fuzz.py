"""Fuzz: >= 1,000 generated ext_proc exchanges against one live server; no crash, no hang.

Each exchange must end with a well-formed answer: routed (header + metadata) or an
ImmediateResponse with an ``inference error:`` body. Every gRPC call has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import random

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from extproc_client import MODE, body_msgs, headers_msg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_support import NOW, endpoint

from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.datastore import Datastore
from scheduler_ref.extproc import ExtProcServicer
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.scheduler import Scheduler

EXCHANGES = 1000

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"model": st.one_of(st.text(max_size=10), st.integers(), st.none())},
        optional={"prompt": st.one_of(st.text(max_size=3000), st.lists(st.integers())),
                  "messages": st.lists(st.dictionaries(st.sampled_from(["role", "content"]),
                                                       st.text(max_size=200)), max_size=3),
                  "stream": st.booleans(), "cache_salt": st.text(max_size=5)},
    ).map(lambda d: json.dumps(d).encode()),
)
exchanges = st.tuples(
    st.sampled_from(["/v1/completions", "/v1/chat/completions", "/v1/responses", "/x", ""]),
    bodies,
    st.integers(min_value=1, max_value=5),  # body chunks
    st.sampled_from([MODE.FULL_DUPLEX_STREAMED, MODE.BUFFERED]),
    st.booleans(),  # headers-only
    st.booleans(),  # response phase
    st.booleans(),  # client abandons the stream early
)


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
                    kinds = [r.WhichOneof("response") for r in out]
                    if "immediate_response" in kinds:
                        imm = out[-1].immediate_response
                        assert imm.body.decode().startswith("inference error: ")
                        assert imm.status.code in (400, 429, 500, 503)
                        outcomes["refused"] += 1
                    elif abandon:
                        outcomes["abandoned"] += 1
                    else:
                        assert kinds and kinds[0] == "request_headers", kinds
                        assert out[0].dynamic_metadata.fields or kinds.count("request_headers")
                        outcomes["routed"] += 1
        finally:
            await server.stop(None)
        assert sum(outcomes.values()) == len(samples)
        assert outcomes["routed"] > 50 and outcomes["refused"] > 50, outcomes

    asyncio.run(asyncio.wait_for(main(), 120))
