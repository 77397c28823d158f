"""Parsing uploaded documents once, with C-speed JSON, for large targets files.

:func:`parse_json` is a strict ``json.loads`` (no NaN/Infinity, no duplicate keys) whose
object hook is C-friendly. :func:`to_metadata` builds the core's typed
:class:`~trustbox.tuf.metadata.Metadata` from the already-parsed value and computes the
canonical ``signed`` bytes once with the C encoder when that is provably identical to
canonical JSON (no floats, no escapes other than ``\\"`` and ``\\\\``); otherwise it falls back
to the core's own encoder. The result caches those bytes, so signature checks do not
re-encode a 10,000-target document.

:func:`parse_document` is the fast path for documents as notary clients write them
(``{"signed":<canonical JSON>,"signatures":[...]}``): when the ``signed`` text is plain ASCII
without escapes and re-encodes (sorted keys, no floats) to exactly the same bytes, those bytes
*are* the canonical encoding, and the equality also proves there was no duplicate key in it.
Anything else takes the strict path, so results and errors are the same either way.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from trustbox.errors import FormatError
from trustbox.tuf.canonical import encode_canonical
from trustbox.tuf.keys import b64decode
from trustbox.tuf.metadata import Metadata, Root, Signature, Signed, Snapshot, Targets, Timestamp

_CLASSES: dict[str, type[Signed]] = {"Root": Root, "Targets": Targets, "Snapshot": Snapshot, "Timestamp": Timestamp}
_ODD_ESCAPE = re.compile(r'\\[^"\\]')


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


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON of ``value``: the C encoder when safe, else the core encoder."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return encode_canonical(value)
    if _has_float(value, text) or ("\\" in text and _ODD_ESCAPE.search(text)):
        return encode_canonical(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return encode_canonical(value)  # raises the core's error for lone surrogates


def _has_float(value: Any, text: str) -> bool:
    # floats can only come from number tokens with '.', 'e' or 'E'; cheap pre-check on the text
    if "." not in text and "e" not in text and "E" not in text:
        return False
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


class ParsedMetadata(Metadata[Any]):
    """Core metadata with its canonical ``signed`` bytes computed once."""

    _canonical: bytes

    def signed_bytes(self) -> bytes:
        """The cached canonical bytes."""
        return self._canonical


def to_metadata(
    data: bytes, value: Any, where: str, expect: type[Signed], canonical: bytes | None = None
) -> Metadata[Any]:
    """Typed metadata from an already-parsed document (same checks as ``Metadata.parse``)."""
    if not isinstance(value, dict) or "signed" not in value or "signatures" not in value:
        raise FormatError(f"{where}: not a signed document (needs 'signed' and 'signatures')")
    signed = value["signed"]
    if not isinstance(signed, dict):
        raise FormatError(f"{where}: 'signed' must be an object")
    t = signed.get("_type")
    cls = _CLASSES.get(t) if isinstance(t, str) else None
    if cls is None:
        raise FormatError(f"{where}: unknown _type {t!r}")
    if cls is not expect:
        raise FormatError(f"{where}: _type is {t!r}, expected {expect._type!r}")
    body = cls.from_dict(signed, where)  # type: ignore[attr-defined]
    sigs_raw = value["signatures"]
    if not isinstance(sigs_raw, list):
        raise FormatError(f"{where}: 'signatures' must be a list")
    sigs = []
    for i, s in enumerate(sigs_raw):
        sw = f"{where}: signatures[{i}]"
        if not isinstance(s, dict):
            raise FormatError(f"{sw} must be an object")
        keyid, method, sig = s.get("keyid"), s.get("method"), s.get("sig")
        if not isinstance(keyid, str) or not isinstance(method, str) or not isinstance(sig, str):
            raise FormatError(f"{sw}: keyid, method and sig must be strings")
        sigs.append(Signature(keyid, method.lower(), b64decode(sig, f"{sw}.sig")))
    md = ParsedMetadata(body, sigs, signed, bytes(data))
    md._canonical = canonical if canonical is not None else canonical_bytes(signed)
    return md


def parse_metadata(data: bytes, where: str, expect: type[Signed]) -> Metadata[Any]:
    """Parse bytes into typed metadata (one JSON parse, one canonical encoding)."""
    value, canonical = parse_document(data)
    return to_metadata(data, value, where, expect, canonical)
