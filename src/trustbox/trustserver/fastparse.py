"""Parsing uploaded documents once, with C-speed JSON, for large targets files.

:func:`parse_json` is a strict ``json.loads`` (no NaN/Infinity, no duplicate keys) whose
object hook is C-friendly. :func:`to_metadata` builds the core's typed
:class:`~trustbox.tuf.metadata.Metadata` from the already-parsed value and computes the
canonical ``signed`` bytes once with the C encoder when that is provably identical to
canonical JSON (no floats, no escapes other than ``\\"`` and ``\\\\``); otherwise it falls back
to the core's own encoder. The result caches those bytes, so signature checks do not
re-encode a 10,000-target document.
"""

from __future__ import annotations

import json
import re
from typing import Any

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


def to_metadata(data: bytes, value: Any, where: str, expect: type[Signed]) -> Metadata[Any]:
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
    md._canonical = canonical_bytes(signed)
    return md


def parse_metadata(data: bytes, where: str, expect: type[Signed]) -> Metadata[Any]:
    """Parse bytes into typed metadata (one JSON parse, one canonical encoding)."""
    return to_metadata(data, parse_json(data), where, expect)
