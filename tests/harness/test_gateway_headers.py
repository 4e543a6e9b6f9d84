"""ext_proc header mutations applied as Envoy's ext_proc filter applies them."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from google.protobuf import wrappers_pb2

from fixtures.gateway.headers import Headers, apply_mutation, strip_for_forwarding

_Action = base_pb2.HeaderValueOption.HeaderAppendAction


def _option(key: str, value: str, **how: object) -> base_pb2.HeaderValueOption:
    header = base_pb2.HeaderValue(key=key, raw_value=value.encode())
    return base_pb2.HeaderValueOption(header=header, **how)  # type: ignore[arg-type]


def _apply(headers: Headers, *options: base_pb2.HeaderValueOption,
           remove: tuple[str, ...] = ()) -> Headers:
    apply_mutation(headers, ext_proc.HeaderMutation(set_headers=options,
                                                    remove_headers=remove))
    return headers


def test_set_without_append_overwrites_as_ext_proc_defaults_to() -> None:
    headers = _apply(Headers({"content-length": "10"}), _option("Content-Length", "42"))
    assert headers.getall("content-length") == ["42"]


def test_append_and_append_actions() -> None:
    headers = Headers({"a": "1", "b": "1", "c": "1"})
    _apply(headers,
           _option("a", "2", append=wrappers_pb2.BoolValue(value=True)),
           _option("b", "2", append_action=_Action.ADD_IF_ABSENT),
           _option("new", "x", append_action=_Action.ADD_IF_ABSENT),
           _option("c", "2", append_action=_Action.OVERWRITE_IF_EXISTS),
           _option("absent", "x", append_action=_Action.OVERWRITE_IF_EXISTS))
    assert headers.getall("a") == ["1", "2"]
    assert headers.getall("b") == ["1"]
    assert headers["new"] == "x"
    assert headers.getall("c") == ["2"]
    assert "absent" not in headers


def test_removals_apply_before_sets() -> None:
    headers = _apply(Headers({"content-length": "10"}), _option("content-length", "42"),
                     remove=("content-length",))
    assert headers.getall("content-length") == ["42"]


def test_routing_pseudo_and_envoy_headers_are_not_the_processors_to_change() -> None:
    original = {":method": "POST", ":authority": "gw", ":scheme": "http", "host": "gw",
                ":path": "/v1/completions", "x-envoy-original-path": "/v1/completions"}
    headers = _apply(Headers(original),
                     _option(":method", "GET"), _option(":authority", "evil"),
                     _option("host", "evil"), _option("x-envoy-original-path", "/x"),
                     _option(":path", "/v1/chat/completions"),
                     remove=(":scheme", "host", "x-envoy-original-path"))
    assert dict(headers) == {**original, ":path": "/v1/chat/completions"}


def test_invalid_status_mutation_is_ignored() -> None:
    headers = _apply(Headers({":status": "200"}), _option(":status", "abc"))
    assert headers[":status"] == "200"
    assert _apply(headers, _option(":status", "503"))[":status"] == "503"


def test_forwarded_headers_drop_pseudo_and_hop_by_hop() -> None:
    headers = Headers({":path": "/", "Connection": "close", "Content-Length": "3",
                       "x-keep": "1", "x-drop": "1"})
    assert dict(strip_for_forwarding(headers, extra=("X-Drop",))) == {"x-keep": "1"}
