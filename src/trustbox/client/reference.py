"""Docker image references: ``[domain/]path[:tag][@digest]`` normalised like the docker CLI.

``docker.io`` is the default domain and single-component Docker Hub names get ``library/``;
the GUN of a repository is its fully qualified name (``docker.io/library/alpine``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustbox.client.errors import ReferenceError_

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
NAME_TOTAL_LENGTH_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


@dataclass(frozen=True)
class ImageRef:
    """A parsed, normalised image reference."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""
    original: str = ""

    @property
    def name(self) -> str:
        """The fully qualified repository name, i.e. the GUN."""
        return f"{self.domain}/{self.path}"

    @property
    def gun(self) -> str:
        """The notary GUN (same as :attr:`name`)."""
        return self.name

    @property
    def official(self) -> bool:
        """Whether the repository lives on Docker Hub (the official index)."""
        return self.domain == DEFAULT_DOMAIN

    @property
    def host(self) -> str:
        """The registry host without port."""
        host = self.domain
        if host.startswith("["):
            return host[: host.index("]") + 1]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def loopback(self) -> bool:
        """Whether the registry is on a loopback address (docker treats it as insecure)."""
        return self.host in _LOOPBACK_HOSTS or self.host.startswith("127.")

    def with_tag(self, tag: str) -> str:
        """``name:tag``."""
        return f"{self.name}:{tag}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise ``text`` like docker's ``reference.ParseNormalizedNamed``."""
    if not text:
        raise ReferenceError_("invalid reference format")
    m = _REFERENCE_RE.match(text)
    if m is None:
        # docker names the upper-case case specially
        if _REFERENCE_RE.match(text.lower()):
            name = text.split("@", 1)[0]
            tail = name.rsplit("/", 1)[-1]
            if ":" in tail:
                name = name[: len(name) - len(tail) + tail.index(":")]
            raise ReferenceError_(f"invalid reference format: repository name ({name}) must be lowercase")
        raise ReferenceError_("invalid reference format")
    name = m.group("name")
    domain, path = _split_domain(name)
    if not _DOMAIN_RE.match(domain):
        raise ReferenceError_("invalid reference format")
    if len(f"{domain}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError_(f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    return ImageRef(domain, path, m.group("tag") or "", m.group("digest") or "", text)
