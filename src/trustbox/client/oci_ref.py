"""Image references the way docker normalises them (``reference.ParseNormalizedNamed``).

``alpine`` → ``docker.io/library/alpine:latest``; ``127.0.0.1:5000/test/trusttest`` keeps its
registry; a reference may carry a tag, a digest, or both.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from trustbox.errors import ConfigError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOMAIN_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")


@dataclass(frozen=True)
class ImageRef:
    """A normalised image reference."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name — the GUN (``docker.io/library/alpine``)."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short name docker prints (``alpine``, ``127.0.0.1:5000/test/x``)."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len("library/") :] if self.path.startswith("library/") and self.path.count("/") == 1 else self.path
        return self.name

    @property
    def api_host(self) -> str:
        """Host[:port] of the registry API (Docker Hub's API lives on registry-1.docker.io)."""
        return DOCKER_HUB_API if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def reference(self) -> str:
        """What to put in ``/v2/<name>/manifests/<reference>``: the digest if any, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> ImageRef:
        """A copy with ``tag`` and no digest."""
        return ImageRef(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> ImageRef:
        """A copy pinned to ``digest`` (tag kept for display)."""
        return ImageRef(self.domain, self.path, self.tag, digest)

    def _suffixed(self, name: str) -> str:
        """``name`` followed by ``:tag`` and ``@digest`` where present."""
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def __str__(self) -> str:
        return self._suffixed(self.name)

    def familiar(self) -> str:
        """Familiar form with tag/digest (``alpine:latest``)."""
        return self._suffixed(self.familiar_name)


def _is_domain(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def parse_image_ref(text: str, default_tag: bool = True) -> ImageRef:
    """Parse and normalise an image reference; raise ConfigError with docker's wording if invalid.

    With ``default_tag`` a reference without tag or digest gets ``latest``.
    """
    if not text or text != text.strip():
        raise ConfigError(f"invalid reference format: {text!r}")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ConfigError(f"invalid reference format: {text!r} (bad digest)")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ConfigError(f"invalid reference format: {text!r} (bad tag)")
    first, sep, remainder = rest.partition("/")
    if sep and _is_domain(first):
        domain, path = first, remainder
        if not _DOMAIN_RE.match(domain):
            raise ConfigError(f"invalid reference format: {text!r} (bad registry host)")
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    if path != path.lower():
        raise ConfigError(f"invalid reference format: repository name ({path}) must be lowercase")
    if not _PATH_RE.match(path) or len(domain) + 1 + len(path) > 255:
        raise ConfigError(f"invalid reference format: {text!r}")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return ImageRef(domain, path, tag, digest)


def host_without_port(hostport: str) -> str:
    """``127.0.0.1:5000`` → ``127.0.0.1``; ``[::1]:5000`` → ``::1``."""
    if hostport.startswith("["):
        return hostport[1 : hostport.index("]")]
    if hostport.count(":") == 1:
        return hostport.split(":", 1)[0]
    return hostport


def is_loopback(hostport: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (with or without a port)."""
    host = host_without_port(hostport).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
