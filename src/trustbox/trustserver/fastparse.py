"""Parsing uploaded documents once, with C-speed JSON, for large targets files.

:func:`parse_json` is a strict ``json.loads`` (no NaN/Infinity, no duplicate keys) whose
object hook is C-friendly. :func:`to_metadata` builds the core's typed
:class:`~trustbox.tuf.metadata.Metadata` from the already-parsed value
(:meth:`~trustbox.tuf.metadata.Metadata.from_value`), passing along the canonical ``signed``
bytes when they are already known, so a 10,000-target document is never re-encoded.

:func:`parse_document` is the fast path for documents as notary clients write them
(``{"signed":<canonical JSON>,"signatures":[...]}``): when the ``signed`` text is plain ASCII
without escapes and re-encodes (sorted keys, no floats) to exactly the same bytes, those bytes
*are* the canonical encoding, and the equality also proves there was no duplicate key in it.
Anything else takes the strict path, so results and errors are the same either way.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from trustbox.errors import FormatError
from trustbox.tuf.metadata import Metadata, Signed


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise FormatError("duplicate JSON object key")
    return d


def _constant(name: str) -> Any:
    raise FormatError(f"invalid JSON number {name}")


def parse_json(data: bytes) -> Any:
    """Strict JSON parse of untrusted bytes (FormatError on anything invalid)."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_constant)
    except FormatError:
        raise
    except RecursionError as exc:
        raise FormatError("JSON nesting too deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"invalid JSON: {exc}") from exc


class _FloatSeen(ValueError):
    pass


def _no_float(text: str) -> Any:
    raise _FloatSeen(text)


_SIGNED_PREFIX = b'{"signed":'
_SIGNATURES_KEY = b',"signatures":'


def _fast_document(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    if not data.startswith(_SIGNED_PREFIX):
        return None
    cut = data.rfind(_SIGNATURES_KEY)
    if cut < 0:
        return None
    segment = data[len(_SIGNED_PREFIX) : cut]
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
        rest = parse_json(b"{" + data[cut + 1 :])
    except FormatError:
        return None
    if not isinstance(rest, dict) or list(rest) != ["signatures"]:
        return None
    return {"signed": signed, "signatures": rest["signatures"]}, canonical


def parse_document(data: bytes) -> tuple[Any, bytes | None]:
    """Strict parse of an uploaded or stored document, plus the canonical bytes of its
    ``signed`` value when the fast path proved them (else None: compute them later)."""
    fast = _fast_document(data)
    if fast is not None:
        return fast
    return parse_json(data), None


def to_metadata(
    data: bytes, value: Any, where: str, expect: type[Signed], canonical: bytes | None = None
) -> Metadata[Any]:
    """Typed metadata from an already-parsed document (the checks of ``Metadata.parse``)."""
    return Metadata.from_value(value, data, where, expect, canonical)


def parse_metadata(data: bytes, where: str, expect: type[Signed]) -> Metadata[Any]:
    """Parse bytes into typed metadata (one JSON parse, one canonical encoding)."""
    value, canonical = parse_document(data)
    return to_metadata(data, value, where, expect, canonical)
