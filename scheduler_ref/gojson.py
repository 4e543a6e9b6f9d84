"""Go ``encoding/json`` compatibility: decode bodies and re-encode them byte for byte as the
EPP does, because the prefix index hashes Go's ``json.Marshal`` output for chat, responses,
embeddings and conversations requests.

Go's rules reproduced here: invalid UTF-8 becomes U+FFFD (one per bad byte), and so does an
unpaired ``\\uD800``-style escape; NaN/Infinity literals and numbers beyond float64 are errors;
``json.Marshal`` escapes ``<``, ``>``, ``&``, U+2028 and U+2029, sorts map keys, writes numbers
as float64 (``strconv`` shortest form, exponent below 1e-6 and from 1e21).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["GoJSONError", "check_numbers", "go_float", "go_loads", "go_marshal", "go_string"]


class GoJSONError(ValueError):
    """The body is not JSON that Go's decoder accepts."""


def _per_byte_replace(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("lamplighter-go-replace", _per_byte_replace)

_SURROGATE = re.compile("[\ud800-\udfff]")
_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                       "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character in JSON: {name}")


def _clean(value: Any) -> Any:
    """Replace unpaired surrogates (Python keeps them, Go writes U+FFFD)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def go_loads(body: bytes) -> Any:
    """Decode as Go would accept it; GoJSONError otherwise."""
    text = body.decode("utf-8", "lamplighter-go-replace")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise GoJSONError(str(e)) from None
    if "\\u" in text and re.search(r"\\u[dD][89a-fA-F]", text):
        value = _clean(value)
    return value


def go_string(s: str) -> str:
    """A JSON string as Go's json.Marshal writes it (HTML-escaped, UTF-8 kept)."""
    return json.dumps(s, ensure_ascii=False).translate(_HTML)


def go_float(value: float) -> str:
    """float64 as encoding/json writes it."""
    if math.isnan(value) or math.isinf(value):
        raise GoJSONError(f"unsupported value: {value}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = repr(value)  # shortest digits, exponent form in this range
        mantissa, _, exp = text.partition("e")
        if exp.startswith("-0"):
            exp = "-" + exp[2:]
        return f"{mantissa}e{exp}"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _number(value: int | float) -> str:
    try:
        return go_float(float(value))
    except OverflowError:
        raise GoJSONError(f"number {value} overflows float64") from None


def go_marshal(value: Any) -> str:
    """json.Marshal of a value decoded into Go's ``any`` (map keys sorted)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list):
        return "[" + ",".join(go_marshal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_string(k)}:{go_marshal(value[k])}"
                              for k in sorted(value)) + "}"
    raise GoJSONError(f"cannot marshal {type(value).__name__}")


def check_numbers(value: Any) -> None:
    """Go decodes every JSON number into float64: one that overflows is an error."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        _number(value)
    elif isinstance(value, list):
        for v in value:
            check_numbers(v)
    elif isinstance(value, dict):
        for v in value.values():
            check_numbers(v)
