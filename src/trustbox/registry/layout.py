"""Where things live in the storage key space.

::

    blobs/<alg>/<first 2 hex>/<hex>                      blob content (layers, configs, manifests)
    repositories/<name>/_layers/<alg>/<hex>              blob linked into a repository
    repositories/<name>/_manifests/revisions/<alg>/<hex> manifest in a repository (content: media type)
    repositories/<name>/_manifests/tags/<tag>            tag (content: digest)
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  referrer descriptor (JSON) of a subject
    uploads/<uuid>/{data,repo}                           upload in progress (local spool)
    uploads/<uuid>/{repo,chunks/<offset>}                shared upload session (remote storage)
    quarantine/<alg>/<hex>.<unix time>                   blobs that failed verification on read

Repository path components cannot start with ``_``, so the ``_layers`` / ``_manifests`` /
``_referrers`` directories never clash with nested repository names.
"""

from __future__ import annotations

from trustbox.oci.digest import Digest

BLOBS = "blobs"
REPOS = "repositories"
QUARANTINE = "quarantine"
UPLOADS = "uploads"
CHUNK_OFFSET_DIGITS = 20


def blob_key(d: Digest) -> str:
    """Key of a blob's content."""
    return f"{BLOBS}/{d.algorithm}/{d.hex[:2]}/{d.hex}"


def repo_prefix(name: str) -> str:
    """Prefix of everything belonging to a repository."""
    return f"{REPOS}/{name}"


def layer_link(name: str, d: Digest) -> str:
    """Key of the link that makes a blob visible in a repository."""
    return f"{REPOS}/{name}/_layers/{d.algorithm}/{d.hex}"


def revision_link(name: str, d: Digest) -> str:
    """Key of the link that makes a manifest visible in a repository."""
    return f"{REPOS}/{name}/_manifests/revisions/{d.algorithm}/{d.hex}"


def tags_prefix(name: str) -> str:
    """Prefix holding a repository's tags."""
    return f"{REPOS}/{name}/_manifests/tags"


def tag_key(name: str, tag: str) -> str:
    """Key of one tag."""
    return f"{tags_prefix(name)}/{tag}"


def referrers_prefix(name: str, subject: Digest) -> str:
    """Prefix holding the referrer descriptors of ``subject``."""
    return f"{REPOS}/{name}/_referrers/{subject.algorithm}/{subject.hex}"


def referrer_key(name: str, subject: Digest, referrer: Digest) -> str:
    """Key of one referrer descriptor."""
    return f"{referrers_prefix(name, subject)}/{referrer.algorithm}-{referrer.hex}"


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
