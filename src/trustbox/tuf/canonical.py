"""Canonical JSON exactly as notary signs it, and the wire encoding notary writes.

Rules (docker/go canonical/json ``MarshalCanonical``): object keys sorted by their UTF-8
bytes, no whitespace, only ``"`` and ``\\`` escaped in strings (everything else raw, control
characters included), integers only, ``true``/``false``/``null``.

The wire form of a document is the canonical form with Go's HTML escaping applied
(``<`` ``>`` ``&`` U+2028 U+2029 as ``\\uXXXX``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from trustbox.errors import CanonicalJSONError, FormatError

JSONValue = Any

_MAX_DEPTH = 64


def _encode_str(s: str) -> bytes:
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError("string is not valid unicode (lone surrogate)") from exc
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _encode(value: JSONValue, out: list[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise CanonicalJSONError(f"JSON nesting deeper than {_MAX_DEPTH} levels")
    if value is None:
        out.append(b"null")
    elif value is True:
        out.append(b"true")
    elif value is False:
        out.append(b"false")
    elif isinstance(value, int):
        out.append(str(value).encode())
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise CanonicalJSONError(f"canonical JSON cannot hold the non-integral number {value!r}")
        out.append(str(int(value)).encode())
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalJSONError(f"object key {k!r} is not a string")
            items.append((k.encode("utf-8", "surrogatepass"), k, v))
        items.sort(key=lambda t: t[0])
        out.append(b"{")
        for i, (_, k, v) in enumerate(items):
            if i:
                out.append(b",")
            out.append(_encode_str(k))
            out.append(b":")
            _encode(v, out, depth + 1)
        out.append(b"}")
    elif isinstance(value, (list, tuple)):
        out.append(b"[")
        for i, v in enumerate(value):
            if i:
                out.append(b",")
            _encode(v, out, depth + 1)
        out.append(b"]")
    else:
        raise CanonicalJSONError(f"value of type {type(value).__name__} cannot be encoded as JSON")


def encode_canonical(value: JSONValue) -> bytes:
    """Return the canonical JSON bytes of ``value`` (what notary signs)."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


_HTML_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def html_escape(data: bytes) -> bytes:
    """Apply Go's JSON HTML escaping to already-encoded JSON bytes.

    The escaped characters can only occur inside strings, so a plain byte substitution
    is safe. Control characters that canonical JSON leaves raw are escaped too, as Go's
    compactor would refuse them otherwise.
    """
    for raw, esc in _HTML_ESCAPES:
        if raw in data:
            data = data.replace(raw, esc)
    if any(b < 0x20 for b in data):
        data = _escape_controls(data)
    return data


def _escape_controls(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b < 0x20:
            out += b"\\u%04x" % b
        else:
            out.append(b)
    return bytes(out)


def encode_wire(value: JSONValue) -> bytes:
    """Canonical JSON plus Go's HTML escaping: the bytes notary puts on the wire."""
    return html_escape(encode_canonical(value))


def _reject_constant(name: str) -> Any:
    raise FormatError(f"invalid JSON number {name}")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise FormatError(f"duplicate JSON object key {dup!r}")
    return d


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays/objects in JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    for b in _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if b in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def loads(data: bytes | str) -> JSONValue:
    """Parse untrusted JSON bytes strictly (no NaN/Infinity, no duplicate keys, bounded depth).

    The depth is checked on the raw text before parsing, so hostile nesting costs nothing.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if json_depth(raw) > _MAX_DEPTH:
        raise FormatError(f"JSON nesting deeper than {_MAX_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_pairs)
    except FormatError:
        raise
    except RecursionError as exc:
        raise FormatError("JSON nesting too deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"invalid JSON: {exc}") from exc


_ODD_ESCAPE = re.compile(r'\\[^"\\]')
_FLOAT_TOKEN = re.compile(r'(?:^|[:,\[])-?\d+(?:\.|[eE])')


def _has_float(value: JSONValue) -> bool:
    # the text pattern also matches inside strings (``"T10:04:52.5Z"``): confirm on the value
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def encode_canonical_parsed(value: JSONValue) -> bytes:
    """Canonical JSON of a value that came from :func:`loads` (string keys only), fast.

    Uses the C JSON encoder when its output is provably the canonical form (no floats, no
    escapes other than ``\\"`` and ``\\\\``); otherwise falls back to :func:`encode_canonical`.
    Not for arbitrary values: the C encoder would turn non-string keys into strings.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return encode_canonical(value)
    if ("\\" in text and _ODD_ESCAPE.search(text)) or (_FLOAT_TOKEN.search(text) and _has_float(value)):
        return encode_canonical(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return encode_canonical(value)
