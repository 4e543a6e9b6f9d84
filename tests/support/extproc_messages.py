"""An Envoy-like ext_proc client for tests: request headers, body chunks, response phase."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

MODE = processing_mode_pb2.ProcessingMode


def headers_msg(path: str = "/v1/completions", extra: dict[str, str] | None = None,
                end_of_stream: bool = False, body_mode: int = MODE.FULL_DUPLEX_STREAMED,
                resp_mode: int = MODE.FULL_DUPLEX_STREAMED) -> pb.ProcessingRequest:
    hs = {":method": "POST", ":path": path, "content-type": "application/json", **(extra or {})}
    return pb.ProcessingRequest(
        request_headers=pb.HttpHeaders(
            headers=base_pb2.HeaderMap(headers=[
                base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in hs.items()]),
            end_of_stream=end_of_stream),
        protocol_config=pb.ProtocolConfiguration(request_body_mode=body_mode,  # type: ignore
                                                 response_body_mode=resp_mode))  # type: ignore


def body_msgs(body: bytes, chunks: int = 1) -> list[pb.ProcessingRequest]:
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    last = len(parts) - 1
    return [pb.ProcessingRequest(request_body=pb.HttpBody(body=p, end_of_stream=i == last))
            for i, p in enumerate(parts)]


def set_headers(resp: pb.ProcessingResponse) -> dict[str, str]:
    which = resp.WhichOneof("response")
    common = getattr(resp, which).response
    return {h.header.key: h.header.raw_value.decode() for h in common.header_mutation.set_headers}
