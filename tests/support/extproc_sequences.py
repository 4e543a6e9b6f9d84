"""ext_proc message sequences for fuzzing any ext_proc server (scheduler_ref, the upstream EPP).

The grammar of what Envoy sends for one request (``envoy_order``), hypothesis strategies for
Envoy-valid sequences, mutated ones and random ones (``sequences``), and the encoding of a step
as a ProcessingRequest (``message``). Sequences start with any of the processing modes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

__all__ = ["GOOD_BODY", "Step", "collect", "drive", "envoy_order", "message", "sequences"]

MODE = processing_mode_pb2.ProcessingMode
GOOD_BODY = json.dumps({"model": "m", "prompt": "p" * 300}).encode()
DEADLINE_S = 10.0

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


def message(step: Step, mode: int | None, first: bool) -> pb.ProcessingRequest:
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


def collect(cases: int) -> list[tuple[list[Step], int | None]]:
    """``cases`` generated (sequence, first-message mode) samples, deterministic."""
    samples: list[tuple[list[Step], int | None]] = []

    @settings(max_examples=cases, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(sequences)
    def one(x: tuple[list[Step], int | None]) -> None:
        samples.append(x)

    one()
    return samples


Verdict = Callable[[list[Step], list[Any], grpc.StatusCode, str], str]


def drive(channel: grpc.Channel, samples: list[tuple[list[Step], int | None]],
          verdict: Verdict, deadline_s: float = DEADLINE_S) -> dict[str, int]:
    """Send every sample as one stream on ``channel``; ``verdict`` judges each ended stream
    (AssertionError on a bad one) and names its outcome. A stream that does not end within
    its deadline fails as a hang. Returns outcome counts plus ``valid`` (Envoy-valid)."""
    tally: dict[str, int] = {"valid": 0}
    stub = pb_grpc.ExternalProcessorStub(channel)
    for seq, mode in samples:
        msgs = [message(s, mode, i == 0) for i, s in enumerate(seq)]
        call = stub.Process(iter(msgs), timeout=deadline_s)
        out: list[Any] = []
        with contextlib.suppress(grpc.RpcError):  # the status is read below
            out.extend(call)
        code = call.code()
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"hang on {seq}"
        outcome = verdict(seq, out, code, call.details() or "")
        tally[outcome] = tally.get(outcome, 0) + 1
        tally["valid"] += envoy_order(seq)[0]
    return tally
