"""Content digests, the one notion for client and registry: ``algorithm:hex`` as go-digest has it.

sha256 and sha512 are supported (go-digest also registers sha384, which no registry uses); the
hex part is lowercase and exactly as long as the algorithm's output.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from trustbox.oci.errors import DigestFormatError, ImageError

#: Algorithm -> length of the hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


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
    """Parse and validate a digest string.

    Raises:
        DigestFormatError: malformed, of an unsupported algorithm, or of the wrong length
            (``detail`` holds the digest, at most 200 characters of it).
    """
    m = _DIGEST_RE.fullmatch(text)
    detail = {"digest": text[:200]}
    if not m:
        raise DigestFormatError(f"invalid digest {text[:200]!r}", detail=detail)
    alg, hexpart = m.group(1), m.group(2)
    length = ALGORITHMS.get(alg)
    if length is None:
        raise DigestFormatError(f"unsupported digest algorithm {alg!r}", detail=detail)
    if len(hexpart) != length or not all(c in "0123456789abcdef" for c in hexpart):
        raise DigestFormatError(f"invalid {alg} digest {text[:200]!r}", detail=detail)
    return Digest(alg, hexpart)


def is_digest(text: str) -> bool:
    """True if ``text`` looks like a digest reference (contains ``:``), as opposed to a tag."""
    return ":" in text


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of ``data`` with ``algorithm``."""
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_sha256(text: object) -> str:
    """Return ``text`` if it is a ``sha256:<64 hex>`` digest (what the client stores and verifies).

    Raises:
        ImageError: anything else.
    """
    if not isinstance(text, str) or not _SHA256_RE.match(text):
        raise ImageError(f"unsupported or malformed digest {str(text)[:100]!r} (only sha256 is supported)")
    return text


def short_id(digest: str) -> str:
    """The 12-hex prefix docker prints for a layer (``aac0c133338d``)."""
    return digest.split(":", 1)[-1][:12]
