"""Content digests: parsing, hashing, and the algorithms the registry accepts."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from trustbox.registry.errors import DigestInvalid

#: Algorithm -> length of the hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, slots=True)
class Digest:
    """A parsed ``algorithm:hex`` digest of a supported algorithm."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> Any:
        """A fresh hashlib object for this digest's algorithm."""
        return hashlib.new(self.algorithm)


def parse_digest(text: str) -> Digest:
    """Parse and validate a digest string; raise DigestInvalid if malformed or unsupported."""
    m = _DIGEST_RE.fullmatch(text)
    if not m:
        raise DigestInvalid(f"invalid digest {text[:200]!r}", detail={"digest": text[:200]})
    alg, hexpart = m.group(1), m.group(2)
    length = ALGORITHMS.get(alg)
    if length is None:
        raise DigestInvalid(f"unsupported digest algorithm {alg!r}", detail={"digest": text[:200]})
    if len(hexpart) != length or not all(c in "0123456789abcdef" for c in hexpart):
        raise DigestInvalid(f"invalid {alg} digest {text[:200]!r}", detail={"digest": text[:200]})
    return Digest(alg, hexpart)


def is_digest(text: str) -> bool:
    """True if ``text`` looks like a digest reference (contains ``:``)."""
    return ":" in text


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of ``data`` with ``algorithm``."""
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
