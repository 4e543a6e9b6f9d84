"""Fuzz the ext_proc message ORDER at scheduler_ref: random sequences of request headers /
body / trailers and response headers / body / trailers (duplicates, gaps, missing
end_of_stream, empty messages) against one live server (``tests.support.extproc_sequences``).

Every stream must end, within its deadline, either with status OK and well-formed answers or
with a clean FAILED_PRECONDITION naming the message that was out of order: never UNKNOWN (an
exception), never a hang. Sequences Envoy can really send must never be refused, and once the
request phase is complete they must have been answered (routed or an ImmediateResponse).
``LAMPLIGHTER_FUZZ_CASES`` sets the count (default 1,000; nightly 10,000).
"""

from __future__ import annotations

import asyncio
import os
import random

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from fixtures.plugin import Evidence
from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.datastore import Datastore
from scheduler_ref.extproc import ExtProcServicer
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.scheduler import Scheduler
from tests.support.extproc_sequences import GOOD_BODY, Step, collect, drive, envoy_order
from tests.support.fuzz_totals import record_fuzz_totals
from tests.support.scheduler_inputs import NOW, endpoint

CASES = int(os.environ.get("LAMPLIGHTER_FUZZ_CASES", "1000"))


def check_stream(seq: list[Step], out: list[pb.ProcessingResponse], code: grpc.StatusCode,
                 details: str) -> str:
    """The verdict on one stream; AssertionError says what was wrong. Returns the outcome."""
    valid, completed = envoy_order(seq)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION), (seq, code,
                                                                                 details)
    kinds = [r.WhichOneof("response") for r in out]
    assert None not in kinds, (seq, kinds)
    if "immediate_response" in kinds:
        assert kinds.index("immediate_response") == len(kinds) - 1, (seq, kinds)
        status = out[-1].immediate_response.status.code
        assert status in (400, 503), (seq, status, out[-1].immediate_response.body)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        assert not valid, f"an Envoy-valid sequence was refused: {seq}: {details}"
        assert "out of order" in details or "unsupported" in details or "twice" in details, \
            details
        return "refused"
    if valid and completed:
        assert "request_headers" in kinds or "immediate_response" in kinds, (seq, kinds)
    return "answered"


def test_check_stream_rejects_what_it_must() -> None:
    """Negative controls for the verdict itself."""
    good: list[Step] = [("H", False, b""), ("B", True, GOOD_BODY)]
    for code, details in ((grpc.StatusCode.UNKNOWN, "Exception iterating responses"),
                          (grpc.StatusCode.FAILED_PRECONDITION, "request_body is out of order")):
        try:
            check_stream(good, [], code, details)
        except AssertionError:
            continue
        raise AssertionError(f"{code} on a valid sequence was accepted")
    try:  # a completed request answered with nothing
        check_stream(good, [], grpc.StatusCode.OK, "")
    except AssertionError:
        pass
    else:
        raise AssertionError("an unanswered request was accepted")


def test_fuzz_message_sequences_end_cleanly(evidence: Evidence) -> None:
    samples = collect(CASES)
    assert len(samples) >= CASES

    async def main() -> dict[str, int]:
        ds = Datastore()
        eps = [endpoint(i) for i in range(1, 4)]
        ds.set_endpoints(eps)
        for e in eps:
            ds.update_metrics(e.key, {"metrics_time": NOW})
        sched = Scheduler(load_config(DEFAULT_CONFIG), rng=random.Random(3))
        server = grpc.aio.server()
        pb_grpc.add_ExternalProcessorServicer_to_server(
            ExtProcServicer(ds, sched, EppMetrics("p"), clock=lambda: NOW), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        def run() -> dict[str, int]:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                return drive(channel, samples, check_stream)

        try:
            # the synchronous client reports the server's status faithfully; the aio client
            # turns a write racing the server's early end into its own INTERNAL
            return await asyncio.to_thread(run)
        finally:
            await server.stop(None)

    tally = asyncio.run(asyncio.wait_for(main(), 120 * max(1, CASES // 1000)))
    record_fuzz_totals(evidence, "scheduler_ref_ext_proc", dict(tally))
    assert tally.get("refused", 0) > CASES // 20 and tally["valid"] > CASES // 5, tally


def test_a_stream_that_never_ends_fails_as_a_hang() -> None:
    """Negative control for ``drive``: a server that reads and never answers."""

    class Silent(pb_grpc.ExternalProcessorServicer):
        async def Process(self, request_iterator, context):  # type: ignore[no-untyped-def]
            async for _ in request_iterator:
                pass
            await asyncio.sleep(30)
            yield pb.ProcessingResponse()

    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_ExternalProcessorServicer_to_server(Silent(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        def run() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                drive(channel, [([("H", True, b"")], None)],
                      lambda *_: "answered", deadline_s=0.5)

        try:
            await asyncio.to_thread(run)
        finally:
            await server.stop(None)

    try:
        asyncio.run(main())
    except AssertionError as exc:
        assert "hang on" in str(exc)
    else:
        raise AssertionError("a stream that never ended was not reported as a hang")
