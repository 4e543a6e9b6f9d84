"""Fuzz the ext_proc message ORDER: random sequences of request headers / body / trailers and
response headers / body / trailers (duplicates, gaps, missing end_of_stream, empty messages)
against one live server.

Every stream must end, within its deadline, either with status OK and well-formed answers or
with a clean FAILED_PRECONDITION naming the message that was out of order: never UNKNOWN (an
exception), never a hang. Sequences Envoy can really send must never be refused, and once the
request phase is complete they must have been answered (routed or an ImmediateResponse).
``LAMPLIGHTER_FUZZ_CASES`` sets the count (default 1,000; nightly 10,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from extproc_client import MODE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_support import NOW, endpoint

from scheduler_ref.config import DEFAULT_CONFIG, load_config
from scheduler_ref.datastore import Datastore
from scheduler_ref.extproc import ExtProcServicer
from scheduler_ref.metrics import EppMetrics
from scheduler_ref.scheduler import Scheduler

CASES = int(os.environ.get("LAMPLIGHTER_FUZZ_CASES", "1000"))
GOOD_BODY = json.dumps({"model": "m", "prompt": "p" * 300}).encode()

Step = tuple[str, bool, bytes]  # (kind, end_of_stream, payload)

PAYLOADS = [GOOD_BODY[:40], GOOD_BODY[40:], GOOD_BODY, b"", b"{", b"\xff\xfe"]
steps = st.tuples(st.sampled_from(["H", "B", "T", "RH", "RB", "RT", "E"]), st.booleans(),
                  st.sampled_from(PAYLOADS))


@st.composite
def envoy_sequences(draw: st.DrawFn) -> list[Step]:
    """What Envoy sends for one request, cut short at a random point."""
    seq: list[Step] = []
    if draw(st.booleans()):  # headers-only (GET)
        seq.append(("H", True, b""))
    else:
        seq.append(("H", False, b""))
        chunks = draw(st.integers(0, 3))
        parts = [GOOD_BODY[i * 100:(i + 1) * 100] for i in range(chunks)] + [GOOD_BODY[
            chunks * 100:]]
        with_trailers = draw(st.booleans())
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            seq.append(("B", last and not with_trailers, part))
        if with_trailers:
            seq.append(("T", False, b""))
    seq.append(("RH", False, b""))
    for _ in range(draw(st.integers(0, 3))):
        seq.append(("RB", False, b"data: {}\n\n"))
    seq.append(("RB", True, b"") if draw(st.booleans()) else ("RT", False, b""))
    return seq[:draw(st.integers(1, len(seq)))]


@st.composite
def mutated(draw: st.DrawFn) -> list[Step]:
    """An Envoy sequence with 0-3 mutations: drop, duplicate, swap, flip end_of_stream,
    insert a random message."""
    seq = list(draw(envoy_sequences()))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "flip", "insert"]))
        i = draw(st.integers(0, max(0, len(seq) - 1)))
        if op == "insert" or not seq:
            seq.insert(i, draw(steps))
        elif op == "drop":
            del seq[i]
        elif op == "dup":
            seq.insert(i, seq[i])
        elif op == "swap" and i + 1 < len(seq):
            seq[i], seq[i + 1] = seq[i + 1], seq[i]
        elif op == "flip":
            kind, eos, payload = seq[i]
            seq[i] = (kind, not eos, payload)
    return seq


sequences = st.tuples(
    st.one_of(envoy_sequences(), mutated(), st.lists(steps, max_size=10)),
    st.sampled_from([None, MODE.FULL_DUPLEX_STREAMED, MODE.BUFFERED, MODE.STREAMED, MODE.NONE]),
)


def _msg(step: Step, mode: int | None, first: bool) -> pb.ProcessingRequest:
    kind, eos, payload = step
    if kind in ("H", "RH"):
        hs = ({":method": "POST", ":path": "/v1/completions"} if kind == "H"
              else {":status": "200", "content-type": "text/event-stream"})
        headers = pb.HttpHeaders(headers=base_pb2.HeaderMap(headers=[
            base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in hs.items()]),
            end_of_stream=eos)
        msg = (pb.ProcessingRequest(request_headers=headers) if kind == "H"
               else pb.ProcessingRequest(response_headers=headers))
    elif kind in ("B", "RB"):
        body = pb.HttpBody(body=payload, end_of_stream=eos)
        msg = (pb.ProcessingRequest(request_body=body) if kind == "B"
               else pb.ProcessingRequest(response_body=body))
    elif kind == "T":
        msg = pb.ProcessingRequest(request_trailers=pb.HttpTrailers())
    elif kind == "RT":
        msg = pb.ProcessingRequest(response_trailers=pb.HttpTrailers())
    else:
        msg = pb.ProcessingRequest()
    if first and mode is not None:
        msg.protocol_config.request_body_mode = mode  # type: ignore[assignment]
        msg.protocol_config.response_body_mode = mode  # type: ignore[assignment]
    return msg


def envoy_order(seq: list[Step]) -> tuple[bool, bool]:
    """(could Envoy send this sequence?, does it complete the request phase?) — the grammar
    H [B* B(eos)] [T] [RH RB* [RB(eos) | RT]], headers-only when H has end_of_stream."""
    phase = "headers"
    completed = False
    trailers = False
    for kind, eos, _ in seq:
        if kind == "H" and phase == "headers":
            phase = "routed" if eos else "body"
            completed = completed or eos
        elif kind == "B" and phase == "body":
            if eos:
                phase, completed = "routed", True
        elif kind == "T" and phase in ("body", "routed") and not trailers:
            trailers, phase, completed = True, "routed", True
        elif kind == "RH" and phase == "routed":
            phase = "response"
        elif kind == "RB" and phase == "response":
            phase = "done" if eos else phase
        elif kind == "RT" and phase == "response":
            phase = "done"
        else:
            return False, completed
    return True, completed


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
    good = [("H", False, b""), ("B", True, GOOD_BODY)]
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


def _drive(port: int, samples: list[tuple[list[Step], int | None]]) -> dict[str, int]:
    tally = {"answered": 0, "refused": 0, "valid": 0}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = pb_grpc.ExternalProcessorStub(ch)
        for seq, mode in samples:
            msgs = [_msg(s, mode, i == 0) for i, s in enumerate(seq)]
            call = stub.Process(iter(msgs), timeout=10)
            out: list[Any] = []
            with contextlib.suppress(grpc.RpcError):  # the status is read below
                out.extend(call)
            code = call.code()
            assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"hang on {seq}"
            tally[check_stream(seq, out, code, call.details() or "")] += 1
            tally["valid"] += envoy_order(seq)[0]
    return tally


def test_fuzz_message_sequences_end_cleanly() -> None:
    samples: list[tuple[list[Step], int | None]] = []

    @settings(max_examples=CASES, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(sequences)
    def collect(x: tuple[list[Step], int | None]) -> None:
        samples.append(x)

    collect()
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
        try:
            # the synchronous client reports the server's status faithfully; the aio client
            # turns a write racing the server's early end into its own INTERNAL
            return await asyncio.to_thread(_drive, port, samples)
        finally:
            await server.stop(None)

    tally = asyncio.run(asyncio.wait_for(main(), 120 * max(1, CASES // 1000)))
    print("sequence fuzz:", tally)
    assert tally["refused"] > CASES // 20 and tally["valid"] > CASES // 5, tally
