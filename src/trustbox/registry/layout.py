"""Where things live in the storage key space: one path mapper, two layouts.

trustbox's own layout (``Layout.TRUSTBOX``, the default for a new storage)::

    blobs/<alg>/<first 2 hex>/<hex>                      blob content (layers, configs, manifests)
    repositories/<name>/_layers/<alg>/<hex>              blob linked into a repository
    repositories/<name>/_manifests/revisions/<alg>/<hex> manifest in a repository (content: media type)
    repositories/<name>/_manifests/tags/<tag>            tag (content: digest)
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  referrer descriptor (JSON) of a subject

registry:2's layout (``Layout.REGISTRY2``, distribution's ``registry/storage/paths.go``), served
in place so a registry:2 deployment is taken over without a copy, and written so registry:2
reads what trustbox stored::

    docker/registry/v2/blobs/<alg>/<first 2 hex>/<hex>/data
    docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link                 (content: digest)
    docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link    (content: digest)
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link       (content: digest)
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
    docker/registry/v2/repositories/<name>/_referrers/...                           (trustbox's; registry:2
                                                                                    skips ``_`` folders)

In both, what only trustbox keeps sits outside the content tree, at the storage root::

    uploads/<uuid>/{data,repo}                           upload in progress (local spool)
    uploads/<uuid>/{repo,chunks/<offset>}                shared upload session (remote storage)
    quarantine/<alg>/<hex>.<unix time>                   blobs that failed verification on read

Repository name components cannot start with ``_``, so the ``_layers`` / ``_manifests`` /
``_referrers`` directories never clash with nested repository names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trustbox.errors import ConfigError
from trustbox.oci.digest import Digest, parse_digest
from trustbox.oci.errors import DigestFormatError
from trustbox.oci.manifest import stored_media_type
from trustbox.registry.storage.base import StorageDriver

QUARANTINE = "quarantine"
UPLOADS = "uploads"
CHUNK_OFFSET_DIGITS = 20
REGISTRY2_ROOT = "docker/registry/v2"

LAYOUT_CHOICES = ("auto", "trustbox", "registry2")


@dataclass(frozen=True)
class Layout:
    """The path mapper: every key of repository content and blobs comes from here."""

    name: str
    root: str  # "" or "docker/registry/v2/"
    suffix: str  # what follows a blob's or link's folder ("" or "/data"), links: ("" or "/link")
    link_suffix: str

    TRUSTBOX: ClassVar[Layout]
    REGISTRY2: ClassVar[Layout]

    @property
    def is_registry2(self) -> bool:
        """True for registry:2's layout."""
        return self is Layout.REGISTRY2

    # --- blobs ---------------------------------------------------------------------------

    @property
    def blobs_prefix(self) -> str:
        """Prefix holding every blob."""
        return f"{self.root}blobs"

    def blob_key(self, d: Digest) -> str:
        """Key of a blob's content."""
        return f"{self.root}blobs/{d.algorithm}/{d.hex[:2]}/{d.hex}{self.suffix}"

    def blob_digest(self, key: str) -> Digest | None:
        """The digest a key under :attr:`blobs_prefix` stores, None for anything else."""
        if not key.startswith(self.blobs_prefix + "/") or not key.endswith(self.suffix):
            return None
        parts = key[len(self.blobs_prefix) + 1:len(key) - len(self.suffix)].split("/")
        if len(parts) != 3 or parts[1] != parts[2][:2]:
            return None
        return _digest_or_none(parts[0], parts[2])

    # --- repositories --------------------------------------------------------------------

    @property
    def repos_prefix(self) -> str:
        """Prefix holding every repository."""
        return f"{self.root}repositories"

    def repo_prefix(self, name: str) -> str:
        """Prefix of everything belonging to a repository."""
        return f"{self.root}repositories/{name}"

    def layer_link(self, name: str, d: Digest) -> str:
        """Key of the link that makes a blob visible in a repository."""
        return f"{self.repo_prefix(name)}/_layers/{d.algorithm}/{d.hex}{self.link_suffix}"

    def revision_link(self, name: str, d: Digest) -> str:
        """Key of the link that makes a manifest visible in a repository."""
        return f"{self.repo_prefix(name)}/_manifests/revisions/{d.algorithm}/{d.hex}{self.link_suffix}"

    def revision_value(self, d: Digest, media_type: str) -> bytes:
        """What a revision link holds: the media type (trustbox) or the digest (registry:2)."""
        return str(d).encode() if self.is_registry2 else media_type.encode()

    def revision_media_type(self, link: bytes, body: bytes) -> str:
        """The media type of a stored manifest from its revision link and its bytes
        (registry:2 keeps none: it is read from the document, as registry:2 does)."""
        return stored_media_type(body) if self.is_registry2 else link.decode()

    def link_digest(self, key: str) -> Digest | None:
        """The digest named by the path of a ``_layers``, revision or tag index link."""
        if not key.endswith(self.link_suffix):
            return None
        parts = key[:len(key) - len(self.link_suffix)].split("/")
        return _digest_or_none(parts[-2], parts[-1]) if len(parts) >= 2 else None

    # --- tags ----------------------------------------------------------------------------

    def tags_prefix(self, name: str) -> str:
        """Prefix holding a repository's tags (one entry per tag)."""
        return f"{self.repo_prefix(name)}/_manifests/tags"

    def tag_key(self, name: str, tag: str) -> str:
        """Key holding the digest a tag points at."""
        if self.is_registry2:
            return f"{self.tags_prefix(name)}/{tag}/current/link"
        return f"{self.tags_prefix(name)}/{tag}"

    def tag_writes(self, name: str, tag: str, d: Digest) -> list[tuple[str, bytes]]:
        """Objects to write, in order, to point ``tag`` at ``d`` (registry:2 also indexes every
        revision a tag ever named, before moving ``current``)."""
        out = [(self.tag_key(name, tag), str(d).encode())]
        if self.is_registry2:
            index = f"{self.tags_prefix(name)}/{tag}/index/{d.algorithm}/{d.hex}/link"
            out.insert(0, (index, str(d).encode()))
        return out

    def tag_objects_prefix(self, name: str, tag: str) -> str | None:
        """Prefix of every object of a tag, which an untag removes (None: the tag is one object)."""
        return f"{self.tags_prefix(name)}/{tag}/" if self.is_registry2 else None

    def is_tag_pointer(self, key: str) -> bool:
        """True for a key holding a tag's current digest (garbage collection reads those)."""
        if "/_manifests/tags/" not in key:
            return False
        return key.endswith("/current/link") if self.is_registry2 else True

    # --- referrers -----------------------------------------------------------------------

    def referrers_prefix(self, name: str, subject: Digest) -> str:
        """Prefix holding the referrer descriptors of ``subject``."""
        return f"{self.repo_prefix(name)}/_referrers/{subject.algorithm}/{subject.hex}"

    def referrer_key(self, name: str, subject: Digest, referrer: Digest) -> str:
        """Key of one referrer descriptor."""
        return f"{self.referrers_prefix(name, subject)}/{referrer.algorithm}-{referrer.hex}"


Layout.TRUSTBOX = Layout("trustbox", "", "", "")
Layout.REGISTRY2 = Layout("registry2", REGISTRY2_ROOT + "/", "/data", "/link")


def _digest_or_none(algorithm: str, hex_: str) -> Digest | None:
    try:
        return parse_digest(f"{algorithm}:{hex_}")
    except DigestFormatError:
        return None


def choose_layout(driver: StorageDriver, wanted: str) -> Layout:
    """The layout to serve ``driver`` with: ``trustbox`` or ``registry2`` as asked, or with
    ``auto`` the one the storage holds (registry:2's when only ``docker/registry/v2`` is
    there, trustbox's for a new storage).

    Raises:
        ConfigError: an unknown choice, or ``auto`` on a storage holding both layouts.
    """
    if wanted not in LAYOUT_CHOICES:
        raise ConfigError(f"invalid layout {wanted!r}", hint="use auto, trustbox or registry2")
    if wanted != "auto":
        return Layout.TRUSTBOX if wanted == "trustbox" else Layout.REGISTRY2
    has_r2 = "v2" in driver.list_dir("docker/registry")
    top = set(driver.list_dir(""))
    has_own = bool(top & {"blobs", "repositories"})
    if has_r2 and has_own:
        raise ConfigError(
            "the storage holds both trustbox's and registry:2's layout",
            hint="choose one with layout = \"trustbox\" or \"registry2\"",
        )
    return Layout.REGISTRY2 if has_r2 else Layout.TRUSTBOX


def quarantine_prefix(algorithm: str) -> str:
    """Where corrupted blobs of ``algorithm`` are kept."""
    return f"{QUARANTINE}/{algorithm}"


def quarantine_key(d: Digest, stamp: int) -> str:
    """Where a corrupted blob is moved to."""
    return f"{QUARANTINE}/{d.algorithm}/{d.hex}.{stamp}"


def upload_prefix(upload_id: str) -> str:
    """Everything of a shared upload session."""
    return f"{UPLOADS}/{upload_id}"


def upload_repo_key(upload_id: str) -> str:
    """The shared session's owner repository."""
    return f"{UPLOADS}/{upload_id}/repo"


def upload_chunk_key(upload_id: str, offset: int) -> str:
    """The shared session's chunk starting at ``offset``."""
    return f"{UPLOADS}/{upload_id}/chunks/{offset:0{CHUNK_OFFSET_DIGITS}d}"
