"""Repository names and tags: the grammar of the distribution spec."""

from __future__ import annotations

import re

from trustbox.registry.errors import NameInvalid, TagInvalid

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
