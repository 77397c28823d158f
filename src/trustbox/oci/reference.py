"""Image references, the one type and parser: ``[domain/]path[:tag][@digest]`` as docker normalises them.

The rules are distribution/reference's ``ParseNormalizedNamed``: ``docker.io`` is the default
domain (``index.docker.io`` is its legacy name), single-component Docker Hub names get
``library/``, the GUN of a repository is its fully qualified name (``docker.io/library/alpine``).
A reference without tag keeps no tag (``docker trust sign alpine`` needs one); commands that
default it (pull, push) use :meth:`ImageRef.tag_name_only`, docker's ``TagNameOnly``. A digest
must be one go-digest validates (here sha256 or sha512, lowercase, of the algorithm's length).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace

from trustbox.oci.digest import ALGORITHMS
from trustbox.oci.errors import ReferenceError_

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
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
_LOWER_HEX = frozenset("0123456789abcdef")


def host_without_port(hostport: str) -> str:
    """``127.0.0.1:5000`` → ``127.0.0.1``; ``[::1]:5000`` → ``::1``."""
    if hostport.startswith("["):
        return hostport[1 : hostport.index("]")] if "]" in hostport else hostport[1:]
    if hostport.count(":") == 1:
        return hostport.split(":", 1)[0]
    return hostport


def is_loopback(hostport: str) -> bool:
    """Whether ``host[:port]`` names this machine, which docker treats as an insecure registry.

    Docker marks registries whose address falls in 127.0.0.0/8 or ::1/128 insecure, resolving
    names: ``localhost`` and, where the resolver follows RFC 6761 (systemd-resolved, the
    default of current distributions), every ``*.localhost`` name resolve there. trustbox does
    not resolve names for this rule and takes those names as loopback.
    """
    host = host_without_port(hostport).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ImageRef:
    """A parsed, normalised image reference (``tag`` and ``digest`` are None when absent)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    original: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        """The fully qualified repository name, i.e. the GUN (``docker.io/library/alpine``)."""
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
        """The registry host without port (IPv6 in brackets)."""
        host = self.domain
        if host.startswith("["):
            return host[: host.index("]") + 1]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def loopback(self) -> bool:
        """Whether the registry is on this machine (docker treats it as insecure): :func:`is_loopback`."""
        return is_loopback(self.domain)

    @property
    def api_host(self) -> str:
        """Host[:port] of the registry API (Docker Hub's API lives on registry-1.docker.io)."""
        return DOCKER_HUB_API if self.official else self.domain

    @property
    def familiar_name(self) -> str:
        """The short name docker prints (``alpine``, ``127.0.0.1:5000/test/x``)."""
        if self.official:
            return self.path[len(OFFICIAL_REPO_PREFIX) :] if self.path.startswith(OFFICIAL_REPO_PREFIX) and self.path.count("/") == 1 else self.path
        return self.name

    @property
    def reference(self) -> str:
        """What to put in ``/v2/<name>/manifests/<reference>``: the digest if any, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def tag_name_only(self) -> ImageRef:
        """Docker's ``TagNameOnly``: the reference with tag ``latest`` when it has neither tag nor digest."""
        if self.tag or self.digest:
            return self
        return replace(self, tag=DEFAULT_TAG)

    def with_digest(self, digest: str) -> ImageRef:
        """A copy pinned to ``digest`` (tag kept for display)."""
        return replace(self, digest=digest)

    def _suffixed(self, name: str) -> str:
        if self.tag:
            name += ":" + self.tag
        if self.digest:
            name += "@" + self.digest
        return name

    def __str__(self) -> str:
        return self._suffixed(self.name)

    def familiar(self) -> str:
        """Familiar form with tag/digest (``alpine:latest``)."""
        return self._suffixed(self.familiar_name)


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


def _check_digest(digest: str) -> None:
    """go-digest's validation of a reference's digest, with its messages.

    Raises:
        ReferenceError_: unsupported algorithm, upper-case hex, or the wrong length.
    """
    algorithm, _, hexpart = digest.partition(":")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise ReferenceError_("unsupported digest algorithm")
    if not set(hexpart) <= _LOWER_HEX:
        raise ReferenceError_("invalid checksum digest format")
    if len(hexpart) != length:
        raise ReferenceError_("invalid checksum digest length")


def _lowercase_error(text: str) -> ReferenceError_:
    name = text.split("@", 1)[0]
    tail = name.rsplit("/", 1)[-1]
    if ":" in tail:
        name = name[: len(name) - len(tail) + tail.index(":")]
    return ReferenceError_(f"invalid reference format: repository name ({name}) must be lowercase")


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise ``text`` like docker's ``reference.ParseNormalizedNamed`` (no default tag).

    Raises:
        ReferenceError_: with docker's message (``invalid reference format...``, go-digest's digest errors).
    """
    m = _REFERENCE_RE.match(text) if text else None
    if m is None:
        if text and _REFERENCE_RE.match(text.lower()):
            raise _lowercase_error(text)
        raise ReferenceError_("invalid reference format")
    domain, path = _split_domain(m.group("name"))
    if not _DOMAIN_RE.match(domain):
        raise ReferenceError_("invalid reference format")
    if len(f"{domain}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError_(f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    digest = m.group("digest")
    if digest:
        _check_digest(digest)
    return ImageRef(domain, path, m.group("tag"), digest, text)


def parse_image_ref(text: str) -> ImageRef:
    """:func:`parse_reference` followed by docker's ``TagNameOnly`` (what pull and push use).

    Raises:
        ReferenceError_: see :func:`parse_reference`.
    """
    return parse_reference(text).tag_name_only()
