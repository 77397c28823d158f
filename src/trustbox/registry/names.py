"""Repository names, tags and digests a client sends: the grammar of the distribution spec.

Digests are the OCI core's (:mod:`trustbox.oci.digest`); this module maps its error onto
the registry's ``DIGEST_INVALID``.
"""

from __future__ import annotations

import re

from trustbox.oci.digest import Digest
from trustbox.oci.digest import parse_digest as _parse_digest
from trustbox.oci.errors import DigestFormatError
from trustbox.registry.errors import DigestInvalid, NameInvalid, TagInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NameInvalid."""
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise NameInvalid(f"invalid repository name {name[:300]!r}", detail={"name": name[:300]})
    return name


def is_tag(text: str) -> bool:
    """True if ``text`` matches the tag grammar."""
    return _TAG_RE.fullmatch(text) is not None


def check_tag(tag: str) -> str:
    """Return ``tag`` if it matches the tag grammar, else raise TagInvalid."""
    if not _TAG_RE.fullmatch(tag):
        raise TagInvalid(f"invalid tag {tag[:200]!r}", detail={"tag": tag[:200]})
    return tag


def parse_digest(text: str) -> Digest:
    """The core's :func:`~trustbox.oci.digest.parse_digest` with the registry's error.

    Raises:
        DigestInvalid: malformed or unsupported (the message and detail are the core's).
    """
    try:
        return _parse_digest(text)
    except DigestFormatError as exc:
        raise DigestInvalid(exc.message, detail=exc.detail) from None
