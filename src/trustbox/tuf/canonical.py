"""Canonical JSON exactly as notary signs it, and the wire encoding notary writes.

Rules (docker/go canonical/json ``MarshalCanonical``): object keys sorted by their UTF-8
bytes, no whitespace, only ``"`` and ``\\`` escaped in strings (everything else raw, control
characters included), integers only, ``true``/``false``/``null``.

The wire form of a document is the canonical form with Go's HTML escaping applied
(``<`` ``>`` ``&`` U+2028 U+2029 as ``\\uXXXX``).

Each fast path sits beside the function it shadows and shares its bounds:
:func:`encode_canonical_parsed` shadows :func:`encode_canonical`, :func:`loads_document` shadows
:func:`loads` (plus the canonical bytes of a document's ``signed`` value). All of them refuse
arrays/objects nested deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import itertools
import json
import re
from array import array
from typing import Any

import orjson

from trustbox.errors import CanonicalJSONError, FormatError

JSONValue = Any

#: the deepest nesting of arrays/objects read or written anywhere (documents and values alike)
MAX_DEPTH = 64
_TOO_DEEP = f"JSON nesting deeper than {MAX_DEPTH} levels"


def _encode_str(s: str) -> bytes:
    try:
        raw = s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError("string is not valid unicode (lone surrogate)") from exc
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _encode(value: JSONValue, out: list[bytes], depth: int) -> None:
    # ``depth``: the arrays/objects around ``value``; one more container than MAX_DEPTH is refused
    if isinstance(value, (dict, list, tuple)) and depth >= MAX_DEPTH:
        raise CanonicalJSONError(_TOO_DEEP)
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
    """Return the canonical JSON bytes of ``value`` (what notary signs); CanonicalJSONError if it
    has none (floats, non-string keys, lone surrogates, nesting deeper than :data:`MAX_DEPTH`)."""
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


# --- nesting depth of JSON text ---------------------------------------------------------------

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_AS_PARENS = bytes.maketrans(b"[{]}", b"(())")
_PAREN_STEPS = bytes.maketrans(b"()", b"\x01\xff")


def _brackets(data: bytes) -> bytes:
    """The array/object brackets of JSON text outside its strings, as ``(`` and ``)`` (C speed)."""
    if b"\\" in data:
        # drop escaped backslashes, then escaped quotes: every quote left delimits a string
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = data.translate(None, _NOT_STRUCTURE)
    # a string without brackets is '""' here: all of them vanish at once. A quote left over means
    # some string holds a bracket; then the pieces between quotes alternate outside/inside.
    outside = marks.replace(b'""', b"")
    if b'"' in outside:
        outside = b"".join(marks.split(b'"')[::2])
    return outside.translate(_AS_PARENS)


def _deepest(parens: bytes) -> int:
    return max(itertools.accumulate(array("b", parens.translate(_PAREN_STEPS))), default=0)


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays/objects in JSON text (strings skipped), without parsing it."""
    return _deepest(_brackets(data))


def check_depth(data: bytes) -> None:
    """Raise FormatError if JSON text nests arrays/objects deeper than :data:`MAX_DEPTH`.

    Peels the innermost bracket pairs once per allowed level (each pass at C speed), so an
    ordinary document costs a few passes over its brackets; only a remainder is counted exactly
    (malformed text can leave one without being deep; the parser refuses it then).
    """
    parens = peeled = _brackets(data)
    for _ in range(MAX_DEPTH):
        if not peeled:
            return
        peeled = peeled.replace(b"()", b"")
    if peeled and _deepest(parens) > MAX_DEPTH:
        raise FormatError(_TOO_DEEP)


# --- parsing untrusted text -------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise FormatError(f"invalid JSON number {name}")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise FormatError(f"duplicate JSON object key {dup!r}")
    return d


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)


def _parse(raw: bytes) -> JSONValue:
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_pairs)
    except FormatError:
        raise
    except RecursionError as exc:
        raise FormatError("JSON nesting too deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"invalid JSON: {exc}") from exc


def loads(data: bytes | str) -> JSONValue:
    """Parse untrusted JSON bytes strictly (no NaN/Infinity, no duplicate keys, bounded depth).

    Raises FormatError. The depth is checked on the raw text before parsing, so hostile nesting
    costs nothing.
    """
    raw = _as_bytes(data)
    check_depth(raw)
    return _parse(raw)


class _FloatSeen(ValueError):
    pass


def _no_float(text: str) -> Any:
    raise _FloatSeen(text)


_SIGNED_PREFIX = b'{"signed":'
_SIGNATURES_KEY = b',"signatures":'


def _fast_document(raw: bytes) -> tuple[dict[str, Any], bytes] | None:
    """``{"signed":<canonical ASCII without escapes>,"signatures":...}`` read with C-speed JSON;
    None for anything else. That the ``signed`` text re-encodes (sorted keys, integers only) to
    the very same bytes proves it canonical and free of duplicate keys."""
    if not raw.startswith(_SIGNED_PREFIX):
        return None
    cut = raw.rfind(_SIGNATURES_KEY)
    if cut < 0:
        return None
    segment = raw[len(_SIGNED_PREFIX) : cut]
    if not segment.isascii() or b"\\" in segment:
        return None
    try:
        signed = json.loads(segment, parse_float=_no_float, parse_constant=_no_float)
        canonical = orjson.dumps(signed, option=orjson.OPT_SORT_KEYS)
    except (ValueError, TypeError, RecursionError, orjson.JSONEncodeError):
        return None
    if canonical != segment or not isinstance(signed, dict):
        return None
    try:
        rest = _parse(b"{" + raw[cut + 1 :])
    except FormatError:
        return None
    if not isinstance(rest, dict) or list(rest) != ["signatures"]:
        return None
    return {"signed": signed, "signatures": rest["signatures"]}, canonical


def loads_document(data: bytes | str) -> tuple[JSONValue, bytes | None]:
    """:func:`loads` for a signed document, plus the canonical bytes of its ``signed`` value when
    the text proves them (else None: :func:`encode_canonical_parsed` computes them later).

    The fast path of :func:`loads` for documents as notary clients write them: the same depth
    check comes first, and whatever the fast path cannot prove goes through :func:`loads`'s
    parser, so values and errors (FormatError) are the same either way.
    """
    raw = _as_bytes(data)
    check_depth(raw)
    fast = _fast_document(raw)
    if fast is not None:
        return fast
    return _parse(raw), None


# --- canonical bytes of parsed values ---------------------------------------------------------

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
    escapes other than ``\\"`` and ``\\\\``, nesting within :data:`MAX_DEPTH`); otherwise falls
    back to :func:`encode_canonical` (and its CanonicalJSONError). Not for arbitrary values: the C
    encoder would turn non-string keys into strings.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return encode_canonical(value)
    if ("\\" in text and _ODD_ESCAPE.search(text)) or (_FLOAT_TOKEN.search(text) and _has_float(value)):
        return encode_canonical(value)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return encode_canonical(value)
    try:
        check_depth(data)
    except FormatError as exc:
        raise CanonicalJSONError(str(exc)) from exc
    return data
